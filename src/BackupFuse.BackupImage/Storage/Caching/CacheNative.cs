using System.Runtime.InteropServices;
using BackupFuse.Core.Native;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The few Linux calls the persistent cache needs that .NET does not offer: openat relative to a directory
//   descriptor with O_NOFOLLOW (a planted symlink is never followed), flock, fallocate(FALLOC_FL_PUNCH_HOLE),
//   fdatasync, renameat/unlinkat, lseek(SEEK_DATA/SEEK_HOLE) and fstat (owner, mode, allocated blocks).
// - Numbers are canonical (linux-x64): openat and fstat go through Core.Native.PosixCalls, which translates the
//   flags, AT_FDCWD, struct stat and errno for the platform (linux-arm64's O_NOFOLLOW is x86_64's O_LARGEFILE).
// - fallocate and fdatasync are Linux calls: elsewhere hole punching reports ENOSYS (the cache then only warns)
//   and fdatasync is fsync.

/// <summary>Linux system calls of the persistent image cache.</summary>
internal static partial class CacheNative
{
    public const int ORdOnly = PosixCalls.ORdOnly;
    public const int ORdWr = PosixCalls.ORdWr;
    public const int OCreat = PosixCalls.OCreat;
    public const int OExcl = PosixCalls.OExcl;
    public const int OTrunc = PosixCalls.OTrunc;
    public const int ODirectory = PosixCalls.ODirectory;
    public const int ONoFollow = PosixCalls.ONoFollow;
    public const int OCloExec = PosixCalls.OCloExec;
    public const int AtFdCwd = PosixCalls.AtFdCwd;
    public const int LockEx = 2;
    public const int LockNb = 4;
    public const int EWouldBlock = 11;
    public const int EExist = 17;
    public const int ENoEnt = 2;
    public const int ENxIo = 6;
    public const int ELoop = 40;
    public const int ENotDir = 20;
    public const int FallocKeepSize = 0x1;
    public const int FallocPunchHole = 0x2;
    public const int SeekData = 3;
    public const int SeekHole = 4;
    public const uint SIfMt = 0xF000;
    public const uint SIfReg = 0x8000;
    public const uint SIfDir = 0x4000;

    /// <summary>The errno of the last failed call, as a one-line message.</summary>
    public static string LastError(out int errno)
    {
        errno = PosixCalls.LastErrno();
        return PosixCalls.Describe(errno);
    }

    /// <summary>openat(2) with canonical flags.</summary>
    public static int OpenAt(int dirfd, string path, int flags, uint mode) => PosixCalls.OpenAt(dirfd, path, flags, mode);

    /// <summary>mkdirat(2) (AT_FDCWD canonical).</summary>
    public static int MkdirAt(int dirfd, string path, uint mode) =>
        MkdirAtNative(dirfd == AtFdCwd ? (NativeAbi.Current ?? NativeAbi.LinuxX64).AtFdCwd : dirfd, path, mode);

    /// <summary>fallocate(2) on Linux; -1 with ENOSYS elsewhere (there is no hole punching through it).</summary>
    public static int Fallocate(SafeFileHandle fd, int mode, long offset, long length)
    {
        if (NativeAbi.Current is { HasLinuxFileCalls: false })
        {
            Marshal.SetLastPInvokeError(78); // macOS ENOSYS; LastError translates it
            return -1;
        }

        return FallocateNative(fd, mode, offset, length);
    }

    /// <summary>fdatasync(2) on Linux, fsync(2) elsewhere.</summary>
    public static int Fdatasync(SafeFileHandle fd) => NativeAbi.Current is { HasLinuxFileCalls: false } ? FsyncHandle(fd) : FdatasyncNative(fd);

    [LibraryImport("libc", EntryPoint = "mkdirat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkdirAtNative(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "renameat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int RenameAt(int olddirfd, string oldpath, int newdirfd, string newpath);

    [LibraryImport("libc", EntryPoint = "unlinkat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int UnlinkAt(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateNative(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdatasyncNative(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncHandle(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    /// <summary>lseek(2) with a canonical whence (SEEK_DATA 3, SEEK_HOLE 4 as on Linux).</summary>
    public static long Lseek(SafeFileHandle fd, long offset, int whence) => LseekNative(fd, offset, (NativeAbi.Current ?? NativeAbi.LinuxX64).Whence.ToNative(whence));

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LseekNative(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint Geteuid();

    /// <summary>fstat(2): type and permission bits, owner, size and allocated bytes; false on failure.</summary>
    public static bool Fstat(int fd, out FileFacts facts)
    {
        if (!PosixCalls.Fstat(fd, out var st))
        {
            facts = default;
            return false;
        }

        facts = new FileFacts(st.Mode, st.Uid, st.Size, st.Blocks * 512);
        return true;
    }

    /// <summary>What fstat tells about a file.</summary>
    public readonly record struct FileFacts(uint Mode, uint Uid, long Size, long AllocatedBytes)
    {
        /// <summary>Whether it is a regular file.</summary>
        public bool IsRegular => (Mode & SIfMt) == SIfReg;

        /// <summary>Whether it is a directory.</summary>
        public bool IsDirectory => (Mode & SIfMt) == SIfDir;
    }
}
