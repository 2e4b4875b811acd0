using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Core.Native;

// Design notes:
// - The libc calls the image readers, the cache, the backup writer and the CLI make, in canonical (linux-x64)
//   numbers, translated through NativeAbi.Current: open flags, AT_FDCWD, errno, struct stat. Callers never see
//   which platform they run on.
// - Three platform traps handled here and nowhere else:
//   * Apple arm64 passes variadic arguments on the stack (NativeAbi.VariadicArgumentsOnStack): open's and
//     openat's mode and fcntl's argument go through declarations padded to the eight argument registers so the
//     value lands in the first stack slot, where va_arg reads it.
//   * macOS x86_64 exports the 64-bit-inode struct stat under "$INODE64" names (stat$INODE64, fstat$INODE64);
//     the plain names there fill the old 32-bit-inode struct. arm64 Macs only have the 64-bit one, unsuffixed.
//   * The path of an open descriptor: /proc/self/fd/N on Linux, fcntl(F_GETPATH) on macOS.
// - Library name: "libc" resolves to libc.so.6 on glibc (the runtime probes libc.so.6 after the linker script
//   libc.so fails to load) and to /usr/lib/libc.dylib (libSystem) on macOS.

/// <summary>Portable wrappers of the few libc calls outside the FUSE binding (see design notes).</summary>
public static unsafe partial class PosixCalls
{
    /// <summary>Canonical O_RDONLY.</summary>
    public const int ORdOnly = 0x0;

    /// <summary>Canonical O_WRONLY.</summary>
    public const int OWrOnly = 0x1;

    /// <summary>Canonical O_RDWR.</summary>
    public const int ORdWr = 0x2;

    /// <summary>Canonical O_CREAT.</summary>
    public const int OCreat = 0x40;

    /// <summary>Canonical O_EXCL.</summary>
    public const int OExcl = 0x80;

    /// <summary>Canonical O_NOCTTY.</summary>
    public const int ONoCtty = 0x100;

    /// <summary>Canonical O_TRUNC.</summary>
    public const int OTrunc = 0x200;

    /// <summary>Canonical O_APPEND.</summary>
    public const int OAppend = 0x400;

    /// <summary>Canonical O_NONBLOCK.</summary>
    public const int ONonBlock = 0x800;

    /// <summary>Canonical O_DIRECTORY.</summary>
    public const int ODirectory = 0x10000;

    /// <summary>Canonical O_NOFOLLOW.</summary>
    public const int ONoFollow = 0x20000;

    /// <summary>Canonical O_CLOEXEC.</summary>
    public const int OCloExec = 0x80000;

    /// <summary>Canonical AT_FDCWD.</summary>
    public const int AtFdCwd = -100;

    private const int FSetFl = 4;
    private const int FGetPath = 50; // xnu bsd/sys/fcntl.h
    private const int MaxPathLen = 1024; // xnu bsd/sys/syslimits.h PATH_MAX

    private static NativeAbi Abi => NativeAbi.Current ?? NativeAbi.LinuxX64;

    /// <summary>The errno the last call left (canonical Linux number).</summary>
    public static int LastErrno() => Abi.Errno.ToCanonical(Marshal.GetLastPInvokeError());

    /// <summary>strerror of a canonical errno, in the platform's words.</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(Abi.Errno.ToNative(errno));

    /// <summary>open(2) with canonical flags; the descriptor or -1 (see <see cref="LastErrno"/>).</summary>
    public static int Open(string path, int flags, uint mode = 0)
    {
        var abi = Abi;
        int native = abi.OpenFlags.ToNative(flags);
        return abi.VariadicArgumentsOnStack ? open_padded(path, native, 0, 0, 0, 0, 0, 0, (nint)mode) : open_native(path, native, mode);
    }

    /// <summary>openat(2) with canonical flags and <see cref="AtFdCwd"/>.</summary>
    public static int OpenAt(int dirfd, string path, int flags, uint mode = 0)
    {
        var abi = Abi;
        int native = abi.OpenFlags.ToNative(flags);
        int dir = dirfd == AtFdCwd ? abi.AtFdCwd : dirfd;
        return abi.VariadicArgumentsOnStack ? openat_padded(dir, path, native, 0, 0, 0, 0, 0, (nint)mode) : openat_native(dir, path, native, mode);
    }

    /// <summary>openat(2) as a SafeFileHandle (invalid on failure).</summary>
    public static SafeFileHandle OpenAt(SafeFileHandle? dir, string path, int flags, uint mode = 0)
    {
        bool added = false;
        try
        {
            dir?.DangerousAddRef(ref added);
            int fd = OpenAt(dir == null ? AtFdCwd : (int)dir.DangerousGetHandle(), path, flags, mode);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        finally
        {
            if (added)
            {
                dir!.DangerousRelease();
            }
        }
    }

    /// <summary>fcntl(F_SETFL) with canonical flags; 0 or -1.</summary>
    public static int SetStatusFlags(int fd, int flags)
    {
        var abi = Abi;
        int native = abi.OpenFlags.ToNative(flags);
        return abi.VariadicArgumentsOnStack ? fcntl_padded(fd, FSetFl, 0, 0, 0, 0, 0, 0, native) : fcntl_native(fd, FSetFl, native);
    }

    /// <summary>fstat(2) into the canonical struct stat; false on failure (see <see cref="LastErrno"/>).</summary>
    public static bool Fstat(int fd, out CanonicalStat stat)
    {
        var abi = Abi;
        byte* native = stackalloc byte[Math.Max(abi.Stat.StructSize, sizeof(CanonicalStat))];
        int rc = abi.Name == NativeAbi.MacOSX64.Name ? fstat_inode64(fd, native) : fstat_native(fd, native);
        return Finish(rc, native, out stat);
    }

    /// <summary>stat(2) (symlinks followed) into the canonical struct stat; false on failure.</summary>
    public static bool Stat(string path, out CanonicalStat stat)
    {
        var abi = Abi;
        byte* native = stackalloc byte[Math.Max(abi.Stat.StructSize, sizeof(CanonicalStat))];
        int rc = abi.Name == NativeAbi.MacOSX64.Name ? stat_inode64(path, native) : stat_native(path, native);
        return Finish(rc, native, out stat);
    }

    /// <summary>The absolute path of an open descriptor (what it is now, not what it was opened as), or null.</summary>
    public static string? DescriptorPath(int fd)
    {
        if (!Abi.IsMacOS)
        {
            return new FileInfo("/proc/self/fd/" + fd.ToString(CultureInfo.InvariantCulture)).LinkTarget;
        }

        byte* buffer = stackalloc byte[MaxPathLen];
        int rc = Abi.VariadicArgumentsOnStack ? fcntl_padded_ptr(fd, FGetPath, 0, 0, 0, 0, 0, 0, buffer) : fcntl_ptr(fd, FGetPath, buffer);
        return rc == -1 ? null : Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(buffer));
    }

    /// <summary>
    /// Fsyncs a directory, so the renames, creations and unlinks in it survive a crash (.NET has no API for it).
    /// The descriptor is O_CLOEXEC: a child forked meanwhile does not inherit it.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be opened or synced.</exception>
    public static void SyncDirectory(string directory)
    {
        int fd = Open(directory, ORdOnly | ODirectory | OCloExec);
        if (fd < 0)
        {
            throw new IOException($"{directory}: cannot open the directory to sync it: {Describe(LastErrno())}");
        }

        try
        {
            if (fsync_native(fd) != 0)
            {
                throw new IOException($"{directory}: fsync of the directory failed: {Describe(LastErrno())}");
            }
        }
        finally
        {
            _ = close_native(fd);
        }
    }

    private static bool Finish(int rc, byte* native, out CanonicalStat stat)
    {
        stat = default;
        if (rc != 0)
        {
            return false;
        }

        fixed (CanonicalStat* s = &stat)
        {
            StatLayout.Copy(Abi.Stat, native, NativeAbi.LinuxX64.Stat, (byte*)s);
        }

        return true;
    }

    /// <summary>dup2(2): makes <paramref name="target"/> refer to what <paramref name="source"/> does; -1 on failure.</summary>
    public static int DuplicateOnto(int source, int target) => dup2_native(source, target);

    /// <summary>close(2); -1 on failure (see <see cref="LastErrno"/>).</summary>
    public static int Close(int fd) => close_native(fd);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int dup2_native(int source, int target);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int fsync_native(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close_native(int fd);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open_native(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open_padded(string path, int flags, nint r2, nint r3, nint r4, nint r5, nint r6, nint r7, nint mode);

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int openat_native(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "openat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int openat_padded(int dirfd, string path, int flags, nint r3, nint r4, nint r5, nint r6, nint r7, nint mode);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_native(int fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_padded(int fd, int cmd, nint r2, nint r3, nint r4, nint r5, nint r6, nint r7, nint arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_ptr(int fd, int cmd, byte* arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_padded_ptr(int fd, int cmd, nint r2, nint r3, nint r4, nint r5, nint r6, nint r7, byte* arg);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat_native(int fd, byte* buf);

    [LibraryImport("libc", EntryPoint = "fstat$INODE64", SetLastError = true)]
    private static partial int fstat_inode64(int fd, byte* buf);

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int stat_native(string path, byte* buf);

    [LibraryImport("libc", EntryPoint = "stat$INODE64", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int stat_inode64(string path, byte* buf);
}
