using System.Runtime.InteropServices;
using System.Text;
using BackupFuse.Fuse.Interop;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - Owns a descriptor of the served directory, opened BEFORE the mount is made, so it keeps referring to the
//   underlying directory when the mount covers it. Every access goes through *at() calls relative to it; a
//   path-based access would walk into our own mount (recursion, and a deadlock when a worker waits on itself).
// - Relative paths come from FUSE (the kernel has already resolved symlinks component by component), so they
//   never contain ".." and never need a symlink followed: they are resolved beneath this directory without following
//   any (openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), or a no-follow walk where openat2 is missing; see
//   UnderlyingDirectory.Beneath.cs), so a directory swapped for a symlink during a race never leads outside.
// - The no-follow helpers (OpenDirectory, CreateDirectory, the handle and single-name methods) are for the daemon's
//   own state files in directories users may write: they walk one component at a time with O_NOFOLLOW, so no
//   symlink anywhere below this directory is followed, and a symlink is reported as UnauthorizedAccessException
//   (EACCES) naming it. Names passed to the single-name methods must not contain '/'.

/// <summary>The directory a mount serves, reached through a descriptor opened before mounting.</summary>
public sealed unsafe partial class UnderlyingDirectory : IDisposable
{
    private int _fd;

    private UnderlyingDirectory(int fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    /// <summary>The directory's path at open time (for messages; do not open files through it).</summary>
    public string Path { get; }

    /// <summary>The effective user id of this process (the owner of what it creates).</summary>
    public static uint CurrentUserId => LibC.geteuid();

    /// <summary>The effective group id of this process.</summary>
    public static uint CurrentGroupId => LibC.getegid();

    /// <summary>The directory descriptor.</summary>
    internal int Descriptor => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(UnderlyingDirectory));

    /// <summary>Why a directory cannot be served on this platform (null on Linux and macOS), for early refusals.</summary>
    public static string? UnsupportedReason => BackupFuse.Core.Native.NativeAbi.Current == null
        ? $"serving a directory through FUSE is not implemented here: {BackupFuse.Core.Native.NativeAbi.UnsupportedReason}"
        : null;

    /// <summary>Opens <paramref name="path"/> (must be a directory). Do this before mounting over it.</summary>
    public static UnderlyingDirectory Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        if (UnsupportedReason is { } reason)
        {
            throw new PlatformNotSupportedException($"{full}: {reason}");
        }

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
        return OpenRelative(relativePath, flags, createMode);
    }

    /// <summary>OpenBeneath of a string path with O_NOFOLLOW: the handle, or ErrnoException naming the file.</summary>
    private SafeFileHandle OpenRelative(string relativePath, int flags, UnixFileMode createMode)
    {
        fixed (byte* p = Utf8Z(relativePath))
        {
            int fd = OpenBeneath(p, flags | LibC.O_NOFOLLOW, (uint)createMode);
            if (fd < 0)
            {
                throw ErrnoException.FromLastError("open", System.IO.Path.Combine(Path, relativePath));
            }

            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    /// <summary>
    /// Opens the regular file <paramref name="relativePath"/> below the directory for reading, resolved like
    /// <see cref="OpenFile"/>, with O_NONBLOCK so that a FIFO swapped in never blocks the open; the opened object is
    /// checked with fstat (IOException "not a regular file" otherwise) and O_NONBLOCK is cleared again.
    /// </summary>
    public SafeFileHandle OpenRegularFile(string relativePath)
    {
        var handle = OpenRelative(relativePath, LibC.O_RDONLY | LibC.O_NONBLOCK, 0);
        try
        {
            int fd = (int)handle.DangerousGetHandle();
            Stat st;
            if (LibC.fstat(fd, &st) != 0)
            {
                throw ErrnoException.FromLastError("stat", System.IO.Path.Combine(Path, relativePath));
            }

            if ((st.Mode & LibC.S_IFMT) != LibC.S_IFREG)
            {
                throw new IOException($"{System.IO.Path.Combine(Path, relativePath)}: not a regular file");
            }

            int flags = LibC.fcntl(fd, LibC.F_GETFL, 0);
            if (flags < 0 || LibC.fcntl(fd, LibC.F_SETFL, flags & ~LibC.O_NONBLOCK) != 0)
            {
                throw ErrnoException.FromLastError("fcntl", System.IO.Path.Combine(Path, relativePath));
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the directory <paramref name="relativePath"/> below this one (empty: this one again) one component at a
    /// time, never following a symbolic link. The result owns a new descriptor. DirectoryNotFoundException when a
    /// component is missing, UnauthorizedAccessException when one is a symlink (or not a directory).
    /// </summary>
    public UnderlyingDirectory OpenDirectory(string relativePath)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        int fd = OpenAt(Descriptor, ".", LibC.O_RDONLY | LibC.O_DIRECTORY, Path);
        string path = Path;
        try
        {
            foreach (var name in relativePath.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (name == ".")
                {
                    continue;
                }

                if (name == "..")
                {
                    throw new UnauthorizedAccessException($"{System.IO.Path.Combine(Path, relativePath)}: a path with '..' is not followed");
                }

                path = System.IO.Path.Combine(path, name);
                int next = OpenAt(fd, name, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW, path);
                LibC.close(fd);
                fd = next;
            }

            return new UnderlyingDirectory(fd, path);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }
    }

    /// <summary>
    /// Creates the directory <paramref name="name"/> here (mode <paramref name="mode"/>) unless it exists, and opens it
    /// without following a symlink. <paramref name="created"/> tells whether this call made it.
    /// </summary>
    public UnderlyingDirectory CreateDirectory(string name, UnixFileMode mode, out bool created)
    {
        CheckName(name);
        fixed (byte* p = Utf8Z(name))
        {
            created = LibC.mkdirat(Descriptor, p, (uint)mode) == 0;
            if (!created && LibC.LastError() != Errno.EEXIST)
            {
                throw Failure("create directory", System.IO.Path.Combine(Path, name));
            }
        }

        return OpenDirectory(name);
    }

    /// <summary>fstat of this directory.</summary>
    public UnderlyingFileStat GetStat()
    {
        Stat st;
        if (LibC.fstat(Descriptor, &st) != 0)
        {
            throw ErrnoException.FromLastError("stat", Path);
        }

        return UnderlyingFileStat.From(st);
    }

    /// <summary>fstat of an open file.</summary>
    public static UnderlyingFileStat GetStat(SafeFileHandle handle, string pathForErrors)
    {
        ArgumentNullException.ThrowIfNull(handle);
        Stat st;
        if (LibC.fstat((int)handle.DangerousGetHandle(), &st) != 0)
        {
            throw ErrnoException.FromLastError("stat", pathForErrors);
        }

        return UnderlyingFileStat.From(st);
    }

    /// <summary>fchown and fchmod of an open file (the mode without the umask).</summary>
    public static void SetOwnerAndMode(SafeFileHandle handle, uint uid, uint gid, UnixFileMode mode, string pathForErrors)
    {
        ArgumentNullException.ThrowIfNull(handle);
        int fd = (int)handle.DangerousGetHandle();
        if (LibC.fchown(fd, uid, gid) != 0 || LibC.fchmod(fd, (uint)mode) != 0)
        {
            throw ErrnoException.FromLastError("chown/chmod", pathForErrors);
        }
    }

    /// <summary>
    /// Renames <paramref name="from"/> to <paramref name="to"/> inside this directory (renameat2, renameatx_np on
    /// macOS: neither name is followed). Without <paramref name="replace"/> an existing <paramref name="to"/> fails (EEXIST).
    /// </summary>
    public void Rename(string from, string to, bool replace)
    {
        CheckName(from);
        CheckName(to);
        fixed (byte* f = Utf8Z(from))
        fixed (byte* t = Utf8Z(to))
        {
            if (LibC.Rename(Descriptor, f, Descriptor, t, replace ? 0u : RenameNoReplace) != 0)
            {
                throw ErrnoException.FromLastError("rename", System.IO.Path.Combine(Path, from) + " to " + to);
            }
        }
    }

    /// <summary>Removes the entry <paramref name="name"/> here (a symlink is removed itself); false when it did not exist.</summary>
    public bool Delete(string name, bool directory = false)
    {
        CheckName(name);
        fixed (byte* p = Utf8Z(name))
        {
            if (LibC.unlinkat(Descriptor, p, directory ? LibC.AT_REMOVEDIR : 0) == 0)
            {
                return true;
            }

            if (LibC.LastError() == Errno.ENOENT)
            {
                return false;
            }

            throw ErrnoException.FromLastError("remove", System.IO.Path.Combine(Path, name));
        }
    }

    /// <summary>fsync of the directory (makes creations and renames in it durable).</summary>
    public void Flush()
    {
        if (LibC.fsync(Descriptor) != 0)
        {
            throw ErrnoException.FromLastError("fsync directory", Path);
        }
    }

    /// <summary>lstat of a name directly in this directory (no '/': a longer path could follow a symlink on the way); false when it does not exist.</summary>
    public bool TryGetStat(string relativePath, out UnderlyingFileStat stat)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        if (relativePath.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"{relativePath}: a single name is expected", nameof(relativePath));
        }

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

    private const uint RenameNoReplace = BackupFuse.Core.Native.OverlayAbi.RenameNoReplace;

    private static void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            throw new ArgumentException($"'{name}' is not a single file name", nameof(name));
        }
    }

    private static int OpenAt(int dirfd, string name, int flags, string pathForErrors)
    {
        fixed (byte* p = Utf8Z(name))
        {
            int fd = LibC.openat(dirfd, p, flags | LibC.O_CLOEXEC, 0);
            if (fd >= 0)
            {
                return fd;
            }

            var failure = Failure("open directory", pathForErrors);
            Stat st;
            // O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR, not ELOOP: say what it is.
            return failure is UnauthorizedAccessException && LibC.fstatat(dirfd, p, &st, LibC.AT_SYMLINK_NOFOLLOW) == 0 && (st.Mode & LibC.S_IFMT) == LibC.S_IFLNK
                ? throw new UnauthorizedAccessException($"{pathForErrors}: is a symbolic link; not followed", failure)
                : throw failure;
        }
    }

    /// <summary>The exception for the last failed call: a symlink or non-directory met with O_NOFOLLOW/O_DIRECTORY is refused access.</summary>
    private static Exception Failure(string operation, string path)
    {
        var e = ErrnoException.FromLastError(operation, path);
        return e.Errno switch
        {
            Errno.ELOOP => new UnauthorizedAccessException($"{path}: is a symbolic link; not followed", e),
            Errno.ENOTDIR => new UnauthorizedAccessException($"{path}: is not a directory", e),
            Errno.ENOENT => new DirectoryNotFoundException(e.Message, e),
            _ => e,
        };
    }

    internal static byte[] Utf8Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
