using System.Runtime.InteropServices;

namespace BackupFuse.Daemon.BackupPoints;

/// <summary>
/// The directories given with <c>--images</c>. A plugin may only name an image below one of them, checked on the
/// real path (symlinks resolved), so that a user who can write into the mounted directory cannot make the daemon
/// read files outside the roots. The same rule admits images found by identity (ImageCatalog's admit rule) and is
/// checked again on every file actually opened (its descriptor's real path), so no path swap slips through.
/// </summary>
public sealed partial class ImageRoots
{
    private readonly string[] _roots;

    /// <summary>Resolves each root to its real path; a missing root is an error.</summary>
    public ImageRoots(IEnumerable<string> directories)
    {
        ArgumentNullException.ThrowIfNull(directories);
        _roots = [.. directories.Select(d => RealPath(d) ?? throw new DirectoryNotFoundException($"--images {d}: no such directory")).Distinct()];
        foreach (var root in _roots)
        {
            if (!Directory.Exists(root))
            {
                throw new DirectoryNotFoundException($"--images {root}: not a directory");
            }
        }
    }

    /// <summary>The roots, as real paths.</summary>
    public IReadOnlyList<string> Directories => _roots;

    /// <summary>Whether <paramref name="path"/> (after resolving symlinks) lies below one of the roots.</summary>
    public bool Contains(string path)
    {
        string? real = RealPath(path);
        return real != null && ContainsRealPath(real);
    }

    /// <summary>Whether the canonical path <paramref name="realPath"/> (e.g. of an opened file) lies below one of the roots.</summary>
    public bool ContainsRealPath(string realPath) => _roots.Any(root => IsUnder(realPath, root));

    /// <summary>Null if <paramref name="realPath"/> lies below a root, else why it is refused (for an admit rule).</summary>
    public string? Refusal(string realPath) =>
        ContainsRealPath(realPath) ? null : $"its real path {realPath} lies outside the --images directories ({string.Join(", ", _roots)})";

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
