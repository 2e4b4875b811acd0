using System.Collections.Concurrent;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - What every remote repository does alike (HTTP(S) directory, S3 prefix): a root that is a directory (listed) or
//   one image (a repository of that one image, no listing); Contains is a prefix match on normalized addresses
//   (RemoteLocation refuses dot segments and encoded slashes), so an image anywhere below the root is inside, as a
//   file below a local root is; the sizes a listing gives are kept, so opening a listed image needs no HEAD.
// - Every object opened goes through RemoteRepositoryOptions.WrapObject (the persistent cache hooks in there).
// - Subclasses only list their kind of directory (the *.bfi directly under the root, not recursive) and open their
//   kind of object. Thread-safe: the size map is concurrent; clients are shared, not owned.

/// <summary>Backup images under a remote root (or one remote image).</summary>
public abstract class RemoteRepository : IImageRepository
{
    private readonly ConcurrentDictionary<string, long> _listedSizes = new(StringComparer.Ordinal);

    /// <summary>A repository over <paramref name="root"/>, which must be of <paramref name="kind"/> (<paramref name="kindName"/> names it in the error).</summary>
    protected RemoteRepository(RemoteLocation root, RemoteRepositoryOptions options, RemoteKind kind, string kindName)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(options);
        if (root.Kind != kind)
        {
            throw new ArgumentException($"{root}: not an {kindName} location", nameof(root));
        }

        Root = root;
        Options = options;
    }

    /// <inheritdoc/>
    public string Location => Root.Url;

    /// <inheritdoc/>
    public bool IsRemote => true;

    /// <summary>The directory or the one image.</summary>
    protected RemoteLocation Root { get; }

    /// <summary>Retry settings and the object wrapper.</summary>
    protected RemoteRepositoryOptions Options { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> List()
    {
        if (!Root.IsDirectory)
        {
            return [Root.Url];
        }

        var found = new List<string>();
        foreach (var (url, size) in ListImages())
        {
            found.Add(url);
            if (size is { } s)
            {
                _listedSizes[url] = s;
            }
        }

        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <inheritdoc/>
    public bool Contains(string address) => RemoteLocation.TryParse(address) is { } location && Root.Contains(location);

    /// <inheritdoc/>
    public IImageObject Open(string address)
    {
        var location = RemoteLocation.Parse(address);
        if (!Root.Contains(location))
        {
            throw new IOException($"{address}: not inside {Location}");
        }

        IImageObject image = OpenImage(location, _listedSizes.TryGetValue(location.Url, out long size) ? size : null);
        return RemoteRepositoryOptions.Wrap(Options.WrapObject, image);
    }

    /// <inheritdoc/>
    public override string ToString() => Location;

    /// <summary>The images directly in the directory <see cref="Root"/> (normalized URLs), with their sizes where the listing gives them.</summary>
    protected abstract IEnumerable<(string Url, long? Size)> ListImages();

    /// <summary>Opens the image at <paramref name="location"/> (inside the root); <paramref name="knownLength"/> comes from a listing.</summary>
    protected abstract IImageObject OpenImage(RemoteLocation location, long? knownLength);
}
