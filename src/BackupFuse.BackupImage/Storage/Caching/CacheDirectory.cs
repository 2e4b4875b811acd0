using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The directory a persistent cache lives in, held open as a descriptor: it is created 0700 (parents as needed),
//   opened with O_NOFOLLOW|O_DIRECTORY (a symlink planted as the directory is refused), must belong to this user,
//   and loses any group/other permission bits it has. Every file in it is opened relative to that descriptor with
//   O_NOFOLLOW (a planted symlink is refused, never followed), created 0600, and must be a regular file of this
//   user. Renames and unlinks are relative to the descriptor too, so a directory swapped in between is not used.
// - Ownership of a directory between processes: an exclusive flock on the file "lock" inside it, held for the life of
//   this object (released by the kernel if the process dies). TryOpenLocked answers null when another process (or
//   another open ImageCache in this process) holds it; the caller then uses a private directory (CreatePrivate),
//   which is removed when disposed. A lock that is busy is tried again for up to LockPatience first: a daemon that is
//   just exiting, or a child process between fork and exec that still shares the descriptor for a moment, is not
//   "another user of the cache" (without the wait a remount right after an unmount ran on a private cache).
// - Not thread-safe for Dispose; every other member may be called from any thread.

/// <summary>A cache directory held open and locked, with symlink-safe file operations inside it.</summary>
internal sealed class CacheDirectory : IDisposable
{
    private const string LockName = "lock";

    private static readonly TimeSpan LockPatience = TimeSpan.FromSeconds(2);
    private const uint DirectoryMode = 0x1C0; // 0700
    private const uint FileMode = 0x180; // 0600
    private readonly int _dirFd;
    private readonly int _lockFd;
    private bool _disposed;

    private CacheDirectory(string path, int dirFd, int lockFd, bool isPrivate)
    {
        Path = path;
        _dirFd = dirFd;
        _lockFd = lockFd;
        IsPrivate = isPrivate;
    }

    /// <summary>The directory's path.</summary>
    public string Path { get; }

    /// <summary>Whether this is a private temporary directory, removed on dispose.</summary>
    public bool IsPrivate { get; }

    /// <summary>
    /// Creates (0700) or opens <paramref name="path"/> and takes its lock; null when another owner holds the lock.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be created or opened, is a symlink, or belongs to another user.</exception>
    public static CacheDirectory? TryOpenLocked(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        string? parent = System.IO.Path.GetDirectoryName(path);
        if (parent != null)
        {
            Directory.CreateDirectory(parent);
        }

        bool created = true;
        if (CacheNative.MkdirAt(CacheNative.AtFdCwd, path, DirectoryMode) != 0)
        {
            string message = CacheNative.LastError(out int errno);
            if (errno != CacheNative.EExist)
            {
                throw new IOException($"{path}: cannot create the cache directory: {message}");
            }

            created = false;
        }

        return Open(path, isPrivate: false, created);
    }

    /// <summary>A fresh private directory under the system temporary directory (removed on dispose), locked.</summary>
    public static CacheDirectory CreatePrivate()
    {
        string path = Directory.CreateTempSubdirectory("backupfuse-cache-").FullName; // 0700
        return Open(path, isPrivate: true, created: true) ?? throw new IOException($"{path}: cannot lock a fresh private cache directory");
    }

    /// <summary>Whether an existing directory with group/other bits may be made private: nobody else may write to it, and it is empty or already a cache (it holds the lock file).</summary>
    private static bool MayMakePrivate(string path, uint mode)
    {
        const uint groupOrOtherWriteOrSticky = 0x12 | 0x200; // g+w, o+w, sticky
        if ((mode & groupOrOtherWriteOrSticky) != 0)
        {
            return false;
        }

        var entries = Directory.EnumerateFileSystemEntries(path).Select(System.IO.Path.GetFileName).ToList();
        return entries.Count == 0 || entries.Contains(LockName);
    }

    private static CacheDirectory? Open(string path, bool isPrivate, bool created)
    {
        int dirFd = CacheNative.OpenAt(CacheNative.AtFdCwd, path, CacheNative.ORdOnly | CacheNative.ODirectory | CacheNative.ONoFollow | CacheNative.OCloExec, 0);
        if (dirFd < 0)
        {
            string message = CacheNative.LastError(out int errno);
            throw new IOException(errno is CacheNative.ELoop or CacheNative.ENotDir
                ? $"{path}: refusing to use it as the cache directory: not a real directory (a symbolic link or a file)"
                : $"{path}: cannot open the cache directory: {message}");
        }

        int lockFd = -1;
        try
        {
            if (!CacheNative.Fstat(dirFd, out var facts) || !facts.IsDirectory || facts.Uid != CacheNative.Geteuid())
            {
                throw new IOException($"{path}: refusing to use it as the cache directory: it must be a directory of this user (uid {CacheNative.Geteuid()})");
            }

            if ((facts.Mode & 0x3F) != 0 && !created && !MayMakePrivate(path, facts.Mode))
            {
                // An existing directory others use (/tmp, /var/cache, a shared folder) is never taken over: making it
                // private would break them, and its files are not the cache's. Only a directory made here, or an empty
                // one (`mkdir cache`) or one that is already a cache, others cannot write to, is made private.
                throw new IOException($"{path}: refusing to use it as the cache directory: others use it (mode {Convert.ToString(facts.Mode & 0xFFF, 8)}, not empty); name a directory of its own (it is created, mode 700, when missing)");
            }

            if ((facts.Mode & 0x3F) != 0 && CacheNative.Fchmod(dirFd, DirectoryMode) != 0)
            {
                throw new IOException($"{path}: cannot make the cache directory private (chmod 700): {CacheNative.LastError(out _)}");
            }

            lockFd = OpenChecked(dirFd, path, LockName, CacheNative.ORdWr | CacheNative.OCreat);
            if (!TryLock(lockFd))
            {
                string message = CacheNative.LastError(out int errno);
                if (errno == CacheNative.EWouldBlock)
                {
                    Close(lockFd);
                    Close(dirFd);
                    return null;
                }

                throw new IOException($"{path}: cannot lock the cache directory: {message}");
            }

            return new CacheDirectory(path, dirFd, lockFd, isPrivate);
        }
        catch
        {
            if (lockFd >= 0)
            {
                Close(lockFd);
            }

            Close(dirFd);
            throw;
        }
    }

    /// <summary>Opens (and with <paramref name="create"/> creates, 0600) the regular file <paramref name="name"/> read-write.</summary>
    /// <exception cref="FileNotFoundException">It does not exist and <paramref name="create"/> is false.</exception>
    /// <exception cref="IOException">It cannot be opened, is a symlink or not a regular file of this user.</exception>
    public SafeFileHandle OpenFile(string name, bool create, bool truncate = false)
    {
        int flags = CacheNative.ORdWr | (create ? CacheNative.OCreat : 0) | (truncate ? CacheNative.OTrunc : 0);
        return new SafeFileHandle(OpenChecked(_dirFd, Path, name, flags), ownsHandle: true);
    }

    /// <summary>Atomically replaces <paramref name="name"/> with <paramref name="tempName"/> and makes the rename durable.</summary>
    public void Replace(string tempName, string name)
    {
        if (CacheNative.RenameAt(_dirFd, tempName, _dirFd, name) != 0)
        {
            throw new IOException($"{Path}/{name}: cannot replace it: {CacheNative.LastError(out _)}");
        }

        _ = CacheNative.Fsync(_dirFd);
    }

    /// <summary>Removes the file <paramref name="name"/> (a missing file is not an error).</summary>
    public void Delete(string name)
    {
        if (CacheNative.UnlinkAt(_dirFd, name, 0) != 0)
        {
            string message = CacheNative.LastError(out int errno);
            if (errno != CacheNative.ENoEnt)
            {
                throw new IOException($"{Path}/{name}: cannot remove it: {message}");
            }
        }
    }

    /// <summary>Names of the entries in the directory (read through the open descriptor).</summary>
    public IReadOnlyList<string> ListNames() =>
        Directory.EnumerateFileSystemEntries("/proc/self/fd/" + _dirFd.ToString(CultureInfo.InvariantCulture))
            .Select(p => System.IO.Path.GetFileName(p))
            .ToList();

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Close(_lockFd);
        Close(_dirFd);
        if (IsPrivate)
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A temporary directory left behind is the OS temp cleaner's; never fail a dispose for it.
            }
        }
    }

    /// <summary>flock(LOCK_EX|LOCK_NB), tried again while busy for up to <see cref="LockPatience"/>; false with errno.</summary>
    private static bool TryLock(int lockFd)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (CacheNative.Flock(lockFd, CacheNative.LockEx | CacheNative.LockNb) != 0)
        {
            int native = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            CacheNative.LastError(out int errno);
            if (errno != CacheNative.EWouldBlock || clock.Elapsed >= LockPatience)
            {
                System.Runtime.InteropServices.Marshal.SetLastPInvokeError(native); // the caller reads flock's errno
                return false;
            }

            Thread.Sleep(50);
        }

        return true;
    }

    private static int OpenChecked(int dirFd, string dir, string name, int flags)
    {
        int fd = CacheNative.OpenAt(dirFd, name, flags | CacheNative.ONoFollow | CacheNative.OCloExec, FileMode);
        if (fd < 0)
        {
            string message = CacheNative.LastError(out int errno);
            throw errno switch
            {
                CacheNative.ENoEnt => new FileNotFoundException($"{dir}/{name}: no such file"),
                CacheNative.ELoop => new IOException($"{dir}/{name}: refusing to open a symbolic link in the cache directory"),
                _ => new IOException($"{dir}/{name}: cannot open: {message}"),
            };
        }

        if (!CacheNative.Fstat(fd, out var facts) || !facts.IsRegular || facts.Uid != CacheNative.Geteuid())
        {
            Close(fd);
            throw new IOException($"{dir}/{name}: refusing to use it: not a regular file of this user");
        }

        return fd;
    }

    private static void Close(int fd) => new SafeFileHandle(fd, ownsHandle: true).Dispose();
}
