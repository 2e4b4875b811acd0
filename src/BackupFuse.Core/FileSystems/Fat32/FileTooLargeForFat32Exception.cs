namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - The brief asked for a subclass of InvalidDataException, but that type is sealed. IOException is the nearest base
//   the command-line and daemon error handlers already turn into one clear line (they catch
//   "InvalidDataException or IOException"), so this derives from it; catch it by its own type to tell it apart.

/// <summary>A tree holds files FAT32 cannot store (4 GiB - 1 byte at most); the message names them.</summary>
public sealed class FileTooLargeForFat32Exception : IOException
{
    /// <summary>How many offending files the message names before "and N more".</summary>
    public const int NamedInMessage = 5;

    /// <summary>An exception naming <paramref name="paths"/> (all offending files, in tree order).</summary>
    public FileTooLargeForFat32Exception(IReadOnlyList<string> paths)
        : base(Describe(paths))
    {
        Paths = paths;
    }

    /// <summary>Creates the exception with a message of its own.</summary>
    public FileTooLargeForFat32Exception()
        : this([])
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public FileTooLargeForFat32Exception(string message)
        : base(message)
    {
        Paths = [];
    }

    /// <summary>Creates the exception with <paramref name="message"/> and an inner exception.</summary>
    public FileTooLargeForFat32Exception(string message, Exception innerException)
        : base(message, innerException)
    {
        Paths = [];
    }

    /// <summary>Every file over the limit ('/'-separated paths from the root).</summary>
    public IReadOnlyList<string> Paths { get; }

    private static string Describe(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        string named = string.Join(", ", paths.Take(NamedInMessage));
        string more = paths.Count > NamedInMessage ? $" and {paths.Count - NamedInMessage} more" : string.Empty;
        return $"{paths.Count} file(s) larger than FAT32's limit of 4 GiB - 1 byte (use exFAT): {named}{more}";
    }
}
