using System.Runtime.InteropServices;
using BackupFuse.Core.Native;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - Every path-taking call is an *at() call relative to the pre-opened directory descriptor: the directory may be
//   covered by our own mount, and going through a path would re-enter the mount (recursion, deadlock).
// - SetLastError=true makes the generated stub capture errno right after the call; read it with
//   Marshal.GetLastPInvokeError() (ErrnoException.FromLastError does).
// - Constants are the linux-x64 values (the canonical numbers). The wrappers for openat, fcntl(F_GETFL/F_SETFL),
//   fstat, fstatat and fstatvfs translate flags and structs through NativeAbi.Current, so callers stay in canonical
//   numbers on linux-arm64 too (its O_DIRECTORY is x86_64's O_DIRECT, its struct stat is 128 bytes). On linux-x64
//   the translation is the identity and the native struct is used in place. LastError() is errno, canonical.
// - openat2, renameat2, fallocate, umount2 and O_PATH are Linux-only: the overlay's portable forms of them (and
//   of the *at() calls whose AT_* flags, AT_FDCWD and UTIME_* values differ, the "$INODE64" symbols of osx-x64,
//   Darwin's struct dirent, the padded variadic openat mode / fcntl argument of osx-arm64) are in
//   LibC.Overlay.cs, driven by NativeAbi.Current.Overlay.

/// <summary>glibc entry points used by the pass-through file system (linux-x64).</summary>
internal static unsafe partial class LibC
{
    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_ACCMODE = 0x3;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800;
    public const int O_DIRECT = 0x4000;
    public const int O_DIRECTORY = 0x10000;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;
    public const int O_PATH = 0x200000;

    /// <summary>VALID_OPEN_FLAGS of the kernel (x86_64): openat() silently drops other bits, openat2() refuses them (EINVAL).</summary>
    public const int ValidOpenFlags = 0x7FFFC3;

    public const long SYS_openat2 = 437; // the same number on every architecture (Linux 5.6+)
    public const ulong RESOLVE_NO_MAGICLINKS = 0x02;
    public const ulong RESOLVE_NO_SYMLINKS = 0x04;
    public const ulong RESOLVE_BENEATH = 0x08;

    public const int F_GETFL = 3;
    public const int F_SETFL = 4;

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_REMOVEDIR = 0x200;
    public const int AT_EMPTY_PATH = 0x1000;

    public const int SEEK_SET = 0;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    public const uint S_IFMT = 0xF000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFLNK = 0xA000;

    public const int MNT_DETACH = 2;

    static LibC() => NativeLibraries.EnsureRegistered();

    /// <summary>openat(2) with canonical flags.</summary>
    public static int openat(int dirfd, byte* path, int flags, uint mode)
    {
        var abi = NativeAbi.Current;
        if (abi == null || abi.OpenFlags.IsIdentity)
        {
            return openat_native(dirfd, path, flags, mode);
        }

        return OpenAtNative(abi, dirfd == AT_FDCWD ? abi.AtFdCwd : dirfd, path, abi.OpenFlags.ToNative(flags), mode);
    }

    /// <summary>fcntl(2); F_GETFL results and F_SETFL arguments are canonical open flags.</summary>
    public static int fcntl(int fd, int cmd, int arg)
    {
        var abi = NativeAbi.Current;
        if (abi == null || abi.OpenFlags.IsIdentity || (cmd != F_GETFL && cmd != F_SETFL))
        {
            return fcntl_native(fd, cmd, arg);
        }

        if (cmd == F_SETFL)
        {
            int native = abi.OpenFlags.ToNative(arg);
            return abi.VariadicArgumentsOnStack ? fcntl_padded(fd, cmd, 0, 0, 0, 0, 0, 0, native) : fcntl_native(fd, cmd, native);
        }

        int result = fcntl_native(fd, cmd, arg); // F_GETFL: no argument
        return result < 0 ? result : abi.OpenFlags.ToCanonical(result);
    }

    /// <summary>fstatat(2) into the canonical <see cref="Stat"/>.</summary>
    public static int fstatat(int dirfd, byte* path, Stat* buf, int flags)
    {
        var layout = NativeAbi.Current?.Stat;
        if (layout == null || layout.IsCanonical)
        {
            return fstatat_native(dirfd, path, buf, flags); // linux-x64: no translation
        }

        var abi = NativeAbi.Current!;
        byte* native = stackalloc byte[layout.StructSize];
        int nativeDir = dirfd == AT_FDCWD ? abi.AtFdCwd : dirfd;
        int nativeFlags = abi.AtFlags.ToNative(flags);
        int rc = abi.Overlay.Inode64Symbols ? fstatat_inode64(nativeDir, path, (Stat*)native, nativeFlags) : fstatat_native(nativeDir, path, (Stat*)native, nativeFlags);
        if (rc == 0)
        {
            StatLayout.Copy(layout, native, NativeAbi.LinuxX64.Stat, (byte*)buf);
        }

        return rc;
    }

    /// <summary>fstat(2) into the canonical <see cref="Stat"/>.</summary>
    public static int fstat(int fd, Stat* buf)
    {
        var layout = NativeAbi.Current?.Stat;
        if (layout == null || layout.IsCanonical)
        {
            return fstat_native(fd, buf);
        }

        byte* native = stackalloc byte[layout.StructSize];
        int rc = NativeAbi.Current!.Overlay.Inode64Symbols ? fstat_inode64(fd, (Stat*)native) : fstat_native(fd, (Stat*)native);
        if (rc == 0)
        {
            StatLayout.Copy(layout, native, NativeAbi.LinuxX64.Stat, (byte*)buf);
        }

        return rc;
    }

    /// <summary>fstatvfs(3) into the canonical <see cref="StatVfs"/>.</summary>
    public static int fstatvfs(int fd, StatVfs* buf)
    {
        var layout = NativeAbi.Current?.StatVfs;
        if (layout == null || layout.IsCanonical)
        {
            return fstatvfs_native(fd, buf);
        }

        byte* native = stackalloc byte[layout.StructSize];
        int rc = fstatvfs_native(fd, (StatVfs*)native);
        if (rc == 0)
        {
            StatVfsLayout.Copy(layout, native, NativeAbi.LinuxX64.StatVfs, (byte*)buf);
        }

        return rc;
    }

    /// <summary>The errno the last P/Invoke with SetLastError left, as a canonical (Linux) number.</summary>
    public static int LastError()
    {
        int native = Marshal.GetLastPInvokeError();
        return NativeAbi.Current?.Errno.ToCanonical(native) ?? native;
    }

    /// <summary>Canonical open flags as the native word for openat2's open_how.flags.</summary>
    public static ulong NativeOpenFlags(int flags) => (ulong)(uint)(NativeAbi.Current?.OpenFlags.ToNative(flags) ?? flags);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "openat", SetLastError = true)]
    private static partial int openat_native(int dirfd, byte* path, int flags, uint mode);

    /// <summary>openat2(2) through syscall(2) (glibc has no wrapper): the descriptor, or -1 and errno.</summary>
    [LibraryImport(NativeLibraries.LibC, EntryPoint = "syscall", SetLastError = true)]
    public static partial long syscall_openat2(long number, long dirfd, byte* path, OpenHow* how, nuint size);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_native(int fd, int cmd, int arg);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int dup(int fd);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fstatat", SetLastError = true)]
    private static partial int fstatat_native(int dirfd, byte* path, Stat* buf, int flags);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat_native(int fd, Stat* buf);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int mkdirat(int dirfd, byte* path, uint mode);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int mknodat(int dirfd, byte* path, uint mode, ulong dev);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "unlinkat", SetLastError = true)]
    private static partial int unlinkat_native(int dirfd, byte* path, int flags);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "renameat2", SetLastError = true)]
    private static partial int renameat2_native(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int symlinkat(byte* target, int newdirfd, byte* linkpath);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial nint readlinkat(int dirfd, byte* path, byte* buf, nuint size);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "linkat", SetLastError = true)]
    private static partial int linkat_native(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, int flags);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int fchmodat(int dirfd, byte* path, uint mode, int flags);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int fchmod(int fd, uint mode);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fchownat", SetLastError = true)]
    private static partial int fchownat_native(int dirfd, byte* path, uint owner, uint group, int flags);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int fchown(int fd, uint owner, uint group);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "utimensat", SetLastError = true)]
    private static partial int utimensat_native(int dirfd, byte* path, Timespec* times, int flags);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "futimens", SetLastError = true)]
    private static partial int futimens_native(int fd, Timespec* times);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial nint pread(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial nint pwrite(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int fdatasync_native(int fd);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int fallocate_native(int fd, int mode, long offset, long length);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "lseek", SetLastError = true)]
    private static partial long lseek_native(int fd, long offset, int whence);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fstatvfs", SetLastError = true)]
    private static partial int fstatvfs_native(int fd, StatVfs* buf);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fdopendir", SetLastError = true)]
    private static partial nint fdopendir_native(int fd);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "readdir", SetLastError = true)]
    private static partial byte* readdir_native(nint dir);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "rewinddir", SetLastError = true)]
    private static partial void rewinddir_native(nint dir);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int closedir(nint dir);

    [LibraryImport(NativeLibraries.LibC, SetLastError = true)]
    public static partial int umount2(byte* target, int flags);

    [LibraryImport(NativeLibraries.LibC)]
    public static partial uint geteuid();

    [LibraryImport(NativeLibraries.LibC)]
    public static partial uint getegid();
}

/// <summary>struct open_how of openat2(2) (24 bytes, the same on every architecture).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct OpenHow
{
    /// <summary>O_* flags.</summary>
    public ulong Flags;

    /// <summary>Mode for O_CREAT/O_TMPFILE (must be 0 otherwise).</summary>
    public ulong Mode;

    /// <summary>RESOLVE_* flags.</summary>
    public ulong Resolve;
}
