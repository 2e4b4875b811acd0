using System.Text;
using BackupFuse.Fuse.Interop;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - Owns a descriptor of the served directory, opened BEFORE the mount is made, so it keeps referring to the
//   underlying directory when the mount covers it. Every access goes through *at() calls relative to it; a
//   path-based access would walk into our own mount (recursion, and a deadlock when a worker waits on itself).
// - Relative paths come from FUSE (the kernel has already resolved symlinks component by component), so they
//   never contain "..". The final component is opened with O_NOFOLLOW where a symlink could lead back into the
//   mount. Not done: openat2(RESOLVE_BENEATH) against a racing symlink swap of an intermediate directory.

/// <summary>The directory a mount serves, reached through a descriptor opened before mounting.</summary>
public sealed unsafe class UnderlyingDirectory : IDisposable
{
    private int _fd;

    private UnderlyingDirectory(int fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    /// <summary>The directory's path at open time (for messages; do not open files through it).</summary>
    public string Path { get; }

    /// <summary>The directory descriptor.</summary>
    internal int Descriptor => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(UnderlyingDirectory));

    /// <summary>
    /// A path that reaches <paramref name="relativePath"/> below this directory through the descriptor
    /// (/proc/self/fd/N/...): the kernel resolves it from the underlying directory, not through a mount covering it,
    /// so code that only takes paths (file formats opening their own files) can work beside the mount. Valid while
    /// this object is open; only for this process.
    /// </summary>
    public string DescriptorPath(string relativePath) =>
        string.IsNullOrEmpty(relativePath) ? $"/proc/self/fd/{Descriptor}" : $"/proc/self/fd/{Descriptor}/{relativePath.TrimStart('/')}";

    /// <summary>Opens <paramref name="path"/> (must be a directory). Do this before mounting over it.</summary>
    public static UnderlyingDirectory Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        fixed (byte* p = Utf8Z(full))
        {
            int fd = LibC.openat(LibC.AT_FDCWD, p, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
            if (fd < 0)
            {
                var e = ErrnoException.FromLastError("open directory", full);
                throw e.Errno switch
                {
                    Errno.ENOENT => new DirectoryNotFoundException(e.Message, e),
                    Errno.EACCES => new UnauthorizedAccessException(e.Message, e),
                    _ => e,
                };
            }

            return new UnderlyingDirectory(fd, full);
        }
    }

    /// <summary>Opens a file below the directory (relative path, e.g. "vm/disk.vhdx"); the final component must not be a symlink.</summary>
    public SafeFileHandle OpenFile(string relativePath, FileAccess access, FileMode mode = FileMode.Open, UnixFileMode createMode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        int flags = access switch
        {
            FileAccess.Read => LibC.O_RDONLY,
            FileAccess.Write => LibC.O_WRONLY,
            _ => LibC.O_RDWR,
        };
        flags |= mode switch
        {
            FileMode.CreateNew => LibC.O_CREAT | LibC.O_EXCL,
            FileMode.Create => LibC.O_CREAT | LibC.O_TRUNC,
            FileMode.OpenOrCreate => LibC.O_CREAT,
            FileMode.Truncate => LibC.O_TRUNC,
            FileMode.Append => LibC.O_CREAT | LibC.O_APPEND,
            _ => 0,
        };
        fixed (byte* p = Utf8Z(relativePath))
        {
            int fd = LibC.openat(Descriptor, p, flags | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, (uint)createMode);
            if (fd < 0)
            {
                throw ErrnoException.FromLastError("open", System.IO.Path.Combine(Path, relativePath));
            }

            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    /// <summary>lstat of a relative path; false when it does not exist.</summary>
    public bool TryGetStat(string relativePath, out UnderlyingFileStat stat)
    {
        fixed (byte* p = Utf8Z(relativePath.Length == 0 ? "." : relativePath))
        {
            Stat st;
            if (LibC.fstatat(Descriptor, p, &st, LibC.AT_SYMLINK_NOFOLLOW) != 0)
            {
                var e = ErrnoException.FromLastError("stat", System.IO.Path.Combine(Path, relativePath));
                if (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
                {
                    stat = default;
                    return false;
                }

                throw e;
            }

            stat = UnderlyingFileStat.From(st);
            return true;
        }
    }

    /// <summary>Closes the descriptor.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            LibC.close(fd);
        }
    }

    internal static byte[] Utf8Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
