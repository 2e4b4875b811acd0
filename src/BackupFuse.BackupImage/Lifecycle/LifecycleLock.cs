using BackupFuse.BackupImage.Storage.Caching;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - merge, prune and commit rewrite, rename and delete files of one image directory; two of them at once on one
//   directory would plan against files the other is replacing. Each takes an exclusive flock (LOCK_EX|LOCK_NB) on
//   ".backupfuse-lifecycle.lock" in the directory for its whole run; a second run is refused at once with one line
//   rather than waiting (a prune from a timer must not queue behind a long merge unseen).
// - The lock file is opened O_CREAT|O_NOFOLLOW|O_CLOEXEC (a planted symlink is refused, never followed) and is never
//   deleted: deleting a lock file others may have open would let two runs each hold a lock on a different file.
// - flock is per open file description, so the holder must take it once per process (the commands do, at their start).
// - Readers (mounts, boot-check) do not take it: they never see a half-written file (ImageFolder publishes by rename).

/// <summary>The per-directory exclusive lock of merge, prune and commit.</summary>
public sealed class LifecycleLock : IDisposable
{
    /// <summary>The lock file's name in the image directory.</summary>
    public const string FileName = ".backupfuse-lifecycle.lock";

    private int _fd;

    private LifecycleLock(int fd) => _fd = fd;

    /// <summary>Takes the lock of <paramref name="directory"/>, or fails at once when another run holds it.</summary>
    /// <exception cref="IOException">Another merge/prune/commit holds it, or the lock file cannot be opened.</exception>
    public static LifecycleLock Acquire(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string dir = Path.GetFullPath(directory);
        string path = Path.Combine(dir, FileName);
        int fd = CacheNative.OpenAt(CacheNative.AtFdCwd, path, CacheNative.ORdWr | CacheNative.OCreat | CacheNative.ONoFollow | CacheNative.OCloExec, 0x180);
        if (fd < 0)
        {
            throw new IOException($"{path}: cannot open the lock file: {CacheNative.LastError(out _)}");
        }

        if (CacheNative.Flock(fd, CacheNative.LockEx | CacheNative.LockNb) != 0)
        {
            string message = CacheNative.LastError(out int errno);
            new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true).Dispose();
            throw new IOException(errno == CacheNative.EWouldBlock
                ? $"another merge/prune/commit is running on {dir}"
                : $"{path}: cannot lock the image directory: {message}");
        }

        return new LifecycleLock(fd);
    }

    /// <summary>Releases the lock (closing the file releases the flock).</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true).Dispose();
        }
    }
}
