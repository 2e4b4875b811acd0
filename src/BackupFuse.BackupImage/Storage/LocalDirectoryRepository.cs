namespace BackupFuse.BackupImage.Storage;

/// <summary>
/// A local directory of images. Lists *.bfi directly inside it (not recursive), sorted by name; an address is inside
/// when its path, made absolute, lies in the directory (the daemon checks real paths on top: ImageRoots).
/// </summary>
public sealed class LocalDirectoryRepository : IImageRepository
{
    /// <summary>A repository over <paramref name="directory"/> (made absolute; it need not exist yet).</summary>
    public LocalDirectoryRepository(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Location = Path.GetFullPath(directory);
    }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public bool IsRemote => false;

    /// <inheritdoc/>
    public IReadOnlyList<string> List()
    {
        string[] files = Directory.GetFiles(Location, "*.bfi", SearchOption.TopDirectoryOnly);
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }

    /// <inheritdoc/>
    public bool Contains(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return !ImageAddress.IsRemote(address) && Path.GetDirectoryName(Path.GetFullPath(address)) == Path.TrimEndingDirectorySeparator(Location);
    }

    /// <inheritdoc/>
    public IImageObject Open(string address) => LocalImageObject.Open(address);

    /// <inheritdoc/>
    public override string ToString() => Location;
}
