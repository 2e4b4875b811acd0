using System.Runtime.InteropServices;

namespace BackupFuse.Fuse.Tests;

/// <summary>Raw libc calls, so tests can check exact errno values and SEEK_DATA/SEEK_HOLE.</summary>
internal static partial class Posix
{
    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_TRUNC = 0x200;
    private const int O_CLOEXEC = 0x80000;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    [DllImport("libc.so.6", EntryPoint = "open", SetLastError = true)]
    private static extern int OpenNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

    [DllImport("libc.so.6", EntryPoint = "close", SetLastError = true)]
    public static extern int Close(int fd);

    [DllImport("libc.so.6", EntryPoint = "lseek", SetLastError = true)]
    private static extern long LseekNative(int fd, long offset, int whence);

    [DllImport("libc.so.6", EntryPoint = "truncate", SetLastError = true)]
    private static extern int TruncateNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, long length);

    [DllImport("libc.so.6", EntryPoint = "pwrite", SetLastError = true)]
    private static extern nint PwriteNative(int fd, byte[] buf, nint count, long offset);

    /// <summary>
    /// open(2) with O_CLOEXEC added: the descriptor, or -errno. Without O_CLOEXEC a process forked meanwhile by
    /// another test (fuse_mount's fusermount3, which stays as the auto_unmount watchdog of its own mount) inherits the
    /// descriptor and keeps this test's lazily unmounted mount alive after the test closed it: the loop then does not end.
    /// </summary>
    public static int Open(string path, int flags, int mode = 0x1A4)
    {
        int fd = OpenNative(path, flags | O_CLOEXEC, mode);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    /// <summary>lseek(2): the offset, or -errno.</summary>
    public static long Lseek(int fd, long offset, int whence)
    {
        long r = LseekNative(fd, offset, whence);
        return r >= 0 ? r : -Marshal.GetLastPInvokeError();
    }

    /// <summary>truncate(2): 0 or -errno.</summary>
    public static int Truncate(string path, long length) => TruncateNative(path, length) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    /// <summary>pwrite(2): bytes written, or -errno.</summary>
    public static long Pwrite(int fd, byte[] data, long offset)
    {
        nint n = PwriteNative(fd, data, data.Length, offset);
        return n >= 0 ? n : -Marshal.GetLastPInvokeError();
    }
}
