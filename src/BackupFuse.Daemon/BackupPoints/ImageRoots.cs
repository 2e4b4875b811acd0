using System.Runtime.InteropServices;
using BackupFuse.BackupImage.Storage;
using BackupFuse.Remote;

namespace BackupFuse.Daemon.BackupPoints;

/// <summary>
/// The directories given with <c>--images</c>. A plugin may only name an image below one of them, checked on the
/// real path (symlinks resolved), so that a user who can write into the mounted directory cannot make the daemon
/// read files outside the roots. The same rule admits images found by identity (ImageCatalog's admit rule) and is
/// checked again on every file actually opened (its descriptor's real path), so no path swap slips through.
/// Remote roots (s3://BUCKET/PREFIX/, https://HOST/PATH/, or one image URL) follow the same rule on their
/// normalized URL (RemoteLocation: no dot segments, no encoded slashes): an image is inside when its URL starts with
/// the root's.
/// </summary>
public sealed partial class ImageRoots
{
    private readonly string[] _roots;
    private readonly RemoteLocation[] _remote;

    /// <summary>
    /// Resolves each local root to its real path (a missing root is an error) and parses each remote one;
    /// <paramref name="stores"/> reaches the remote ones (a default one is made when null and a root is remote).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">A local root does not exist.</exception>
    /// <exception cref="IOException">A remote root is not a valid address.</exception>
    public ImageRoots(IEnumerable<string> directories, RemoteStores? stores = null)
    {
        ArgumentNullException.ThrowIfNull(directories);
        var given = directories.ToList();
        var repositories = new List<IImageRepository>();
        var local = new List<string>();
        var remote = new List<RemoteLocation>();
        foreach (var d in given)
        {
            if (ImageAddress.IsRemote(d))
            {
                RemoteLocation root;
                try
                {
                    root = RemoteLocation.ParseRoot(d);
                }
                catch (FormatException e)
                {
                    throw new IOException($"--images {e.Message}", e);
                }

                if (!remote.Contains(root))
                {
                    stores ??= new RemoteStores(new RemoteRepositoryOptions());
                    remote.Add(root);
                    repositories.Add(stores.Repository(root.Url));
                }

                continue;
            }

            string real = RealPath(d) ?? throw new DirectoryNotFoundException($"--images {d}: no such directory");
            if (!Directory.Exists(real))
            {
                throw new DirectoryNotFoundException($"--images {real}: not a directory");
            }

            if (!local.Contains(real))
            {
                local.Add(real);
                repositories.Add(new LocalDirectoryRepository(real));
            }
        }

        _roots = [.. local];
        _remote = [.. remote];
        Repositories = repositories;
    }

    /// <summary>The local roots, as real paths.</summary>
    public IReadOnlyList<string> Directories => _roots;

    /// <summary>The remote roots, normalized.</summary>
    public IReadOnlyList<RemoteLocation> Remote => _remote;

    /// <summary>Every root (local real paths and remote URLs) in the order given, for messages.</summary>
    public IReadOnlyList<string> Locations => [.. Repositories.Select(r => r.Location)];

    /// <summary>One repository per root, in the order given (what the catalog searches).</summary>
    public IReadOnlyList<IImageRepository> Repositories { get; }

    /// <summary>Whether <paramref name="path"/> (after resolving symlinks) lies below one of the roots.</summary>
    public bool Contains(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (ImageAddress.IsRemote(path))
        {
            return ContainsRemote(path);
        }

        string? real = RealPath(path);
        return real != null && ContainsRealPath(real);
    }

    /// <summary>Whether the remote <paramref name="address"/> (normalized) equals or lies below one of the remote roots.</summary>
    public bool ContainsRemote(string address) => RemoteLocation.TryParse(address) is { } location && _remote.Any(r => r.Contains(location));

    /// <summary>Whether the canonical path <paramref name="realPath"/> (e.g. of an opened file) lies below one of the roots.</summary>
    public bool ContainsRealPath(string realPath) => _roots.Any(root => IsUnder(realPath, root));

    /// <summary>Null if <paramref name="realPath"/> lies below a root, else why it is refused (for an admit rule).</summary>
    public string? Refusal(string realPath) =>
        ContainsRealPath(realPath) ? null : $"its real path {realPath} lies outside the --images directories ({string.Join(", ", Locations)})";

    /// <summary>Whether <paramref name="path"/> equals or lies below <paramref name="directory"/> (both real paths).</summary>
    public static bool IsUnder(string path, string directory)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(directory);
        string dir = directory.EndsWith('/') ? directory : directory + "/";
        return path == directory || path.StartsWith(dir, StringComparison.Ordinal);
    }

    /// <summary>realpath(3): the canonical absolute path, or null if it does not exist.</summary>
    public static string? RealPath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        IntPtr resolved = realpath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free(resolved);
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc")]
    private static partial void free(IntPtr pointer);
}
