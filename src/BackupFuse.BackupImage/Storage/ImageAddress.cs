namespace BackupFuse.BackupImage.Storage;

/// <summary>
/// Image addresses: a local path, or a URL (s3://, http://, https://) naming a remote object or, ending in '/', a
/// remote repository.
/// </summary>
public static class ImageAddress
{
    private static readonly string[] RemoteSchemes = ["s3://", "http://", "https://"];

    /// <summary>Whether <paramref name="address"/> is a URL of a remote object or repository.</summary>
    public static bool IsRemote(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return RemoteSchemes.Any(s => address.StartsWith(s, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// The repository that holds <paramref name="address"/>: for a URL everything up to and including the last '/',
    /// for a path its directory (absolute).
    /// </summary>
    public static string ContainerOf(string address)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (IsRemote(address))
        {
            int slash = address.LastIndexOf('/');
            return address[..(slash + 1)];
        }

        return Path.GetDirectoryName(Path.GetFullPath(address))!;
    }

    /// <summary>The last component of <paramref name="address"/> (a file or object name).</summary>
    public static string NameOf(string address)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        return IsRemote(address) ? address[(address.LastIndexOf('/') + 1)..] : Path.GetFileName(address);
    }
}
