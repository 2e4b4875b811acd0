namespace BackupFuse.Testing;

/// <summary>A fresh directory under the system temp folder, removed (recursively) on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    /// <summary>Creates the directory.</summary>
    public TempDirectory(string prefix = "bf")
    {
        Path = Directory.CreateTempSubdirectory(prefix + "-").FullName;
    }

    /// <summary>Full path of the directory.</summary>
    public string Path { get; }

    /// <summary>Path of <paramref name="name"/> inside the directory.</summary>
    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A mount still detaching; leave it for the OS temp cleaner rather than failing a test in cleanup.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
