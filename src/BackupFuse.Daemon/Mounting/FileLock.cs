using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Daemon.Mounting;

/// <summary>
/// A flock(2) on a file, taken without waiting. The daemon holds a shared one on a plugin's changes file while the
/// plugin is open; <c>reset</c> and <c>export</c> take an exclusive one, which fails while the disk is in use.
/// (.NET itself takes a shared flock when it opens a file that others may share, so a shared holder and ordinary
/// opens coexist, and an exclusive holder blocks both.)
/// </summary>
public sealed partial class FileLock : IDisposable
{
    private const int LockShared = 1;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int LockUnlock = 8;
    private readonly SafeFileHandle _handle;

    private FileLock(SafeFileHandle handle)
    {
        _handle = handle;
    }

    /// <summary>
    /// Locks <paramref name="path"/> (exclusively, or shared), or returns null when a conflicting lock is held by
    /// another open file description (another process, or another open of this one).
    /// </summary>
    public static FileLock? TryAcquire(string path, bool exclusive = true)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (flock(handle, (exclusive ? LockExclusive : LockShared) | LockNonBlocking) == 0)
        {
            return new FileLock(handle);
        }

        handle.Dispose();
        return null;
    }

    /// <summary>Locks <paramref name="path"/> or throws an IOException saying it is in use.</summary>
    public static FileLock Acquire(string path, string what, bool exclusive = true) =>
        TryAcquire(path, exclusive) ?? throw new IOException($"{what} is in use (open through the mount, or by another backupfuse command); close it first");

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_handle.IsClosed)
        {
            _ = flock(_handle, LockUnlock);
            _handle.Dispose();
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(SafeFileHandle fd, int operation);
}
