using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The few Linux calls the persistent cache needs that .NET does not offer: openat relative to a directory
//   descriptor with O_NOFOLLOW (a planted symlink is never followed), flock, fallocate(FALLOC_FL_PUNCH_HOLE),
//   fdatasync, renameat/unlinkat, lseek(SEEK_DATA/SEEK_HOLE) and fstat (owner, mode, allocated blocks).
// - linux-x64 struct stat layout, like UnixFile; errno comes back through Marshal.GetLastPInvokeError.

/// <summary>Linux system calls of the persistent image cache.</summary>
internal static partial class CacheNative
{
    public const int ORdOnly = 0x0;
    public const int ORdWr = 0x2;
    public const int OCreat = 0x40;
    public const int OExcl = 0x80;
    public const int OTrunc = 0x200;
    public const int ODirectory = 0x10000;
    public const int ONoFollow = 0x20000;
    public const int OCloExec = 0x80000;
    public const int AtFdCwd = -100;
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
        errno = Marshal.GetLastPInvokeError();
        return Marshal.GetPInvokeErrorMessage(errno);
    }

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int OpenAt(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "mkdirat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int MkdirAt(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "renameat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int RenameAt(int olddirfd, string oldpath, int newdirfd, string newpath);

    [LibraryImport("libc", EntryPoint = "unlinkat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int UnlinkAt(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int Fdatasync(SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long Lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint Geteuid();

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FstatRaw(int fd, out NativeStat buf);

    /// <summary>fstat(2): type and permission bits, owner, size and allocated bytes; false on failure.</summary>
    public static bool Fstat(int fd, out FileFacts facts)
    {
        if (FstatRaw(fd, out var st) != 0)
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

    /// <summary>struct stat on linux-x64 (144 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 144)]
    private struct NativeStat
    {
        [FieldOffset(24)] public uint Mode;
        [FieldOffset(28)] public uint Uid;
        [FieldOffset(48)] public long Size;
        [FieldOffset(64)] public long Blocks;
    }
}
