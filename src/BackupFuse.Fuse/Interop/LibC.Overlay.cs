using System.Runtime.InteropServices;
using BackupFuse.Core.Native;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - The portable forms of the pass-through overlay's calls. Callers pass canonical (linux-x64) numbers; what
//   differs on the platform comes from NativeAbi.Current and its Overlay table (OverlayAbi.cs cites the headers):
//   AT_FDCWD and AT_* flags, UTIME_NOW/UTIME_OMIT, renameat2 flags (renameatx_np's RENAME_EXCL/RENAME_SWAP on
//   macOS), struct dirent, the "$INODE64" entry points of osx-x64, the padded variadic openat mode / fcntl argument
//   of osx-arm64 (Apple arm64 passes variadic arguments on the stack), and the calls that do not exist there:
//   fallocate (EOPNOTSUPP, which FUSE clients take as "not offered"), fdatasync (fsync). lseek's whence is
//   translated too (SEEK_DATA/SEEK_HOLE are 4/3 on macOS).
// - "Pinned" descriptors: an entry opened without following it, only to fstat/fchown/fchmod/futimens it (O_PATH
//   |O_NOFOLLOW on Linux; O_RDONLY|O_SYMLINK|O_NONBLOCK on macOS, which has no O_PATH). On Linux an O_PATH
//   descriptor cannot be fchmod'ed or futimens'ed, so those go through /proc/self/fd; elsewhere the plain f*()
//   calls work on the descriptor.
// - On linux-x64 every wrapper is the native call with the same arguments (the identity tables), so the Linux
//   behaviour is what it was before the port.

/// <summary>The overlay's platform-dependent libc calls (see design notes).</summary>
internal static unsafe partial class LibC
{
    private static NativeAbi Abi => NativeAbi.Current ?? NativeAbi.LinuxX64;

    /// <summary>unlinkat(2) with canonical AT_* flags.</summary>
    public static int unlinkat(int dirfd, byte* path, int flags) => unlinkat_native(NativeDir(dirfd), path, Abi.AtFlags.ToNative(flags));

    /// <summary>linkat(2) with canonical AT_* flags.</summary>
    public static int linkat(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, int flags) =>
        linkat_native(NativeDir(olddirfd), oldpath, NativeDir(newdirfd), newpath, Abi.AtFlags.ToNative(flags));

    /// <summary>fchownat(2) with canonical AT_* flags (AT_EMPTY_PATH is Linux-only: use <see cref="ChownPinned"/>).</summary>
    public static int fchownat(int dirfd, byte* path, uint owner, uint group, int flags) =>
        fchownat_native(NativeDir(dirfd), path, owner, group, Abi.AtFlags.ToNative(flags));

    /// <summary>utimensat(2) with canonical AT_* flags and canonical UTIME_NOW/UTIME_OMIT.</summary>
    public static int utimensat(int dirfd, byte* path, Timespec* times, int flags)
    {
        Timespec* native = stackalloc Timespec[2];
        return utimensat_native(NativeDir(dirfd), path, NativeTimes(times, native), Abi.AtFlags.ToNative(flags));
    }

    /// <summary>futimens(2) with canonical UTIME_NOW/UTIME_OMIT.</summary>
    public static int futimens(int fd, Timespec* times)
    {
        Timespec* native = stackalloc Timespec[2];
        return futimens_native(fd, NativeTimes(times, native));
    }

    /// <summary>fdatasync(2), or fsync where it is not a public call.</summary>
    public static int fdatasync(int fd) => Abi.Overlay.HasFdatasync ? fdatasync_native(fd) : fsync(fd);

    /// <summary>fallocate(2); -1 with EOPNOTSUPP where the platform has none.</summary>
    public static int fallocate(int fd, int mode, long offset, long length)
    {
        if (Abi.Overlay.HasFallocate)
        {
            return fallocate_native(fd, mode, offset, length);
        }

        Marshal.SetLastPInvokeError(Abi.Errno.ToNative(Errno.EOPNOTSUPP));
        return -1;
    }

    /// <summary>
    /// renameat2(2) with canonical flags (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2), as renameatx_np on macOS; -1 with
    /// EINVAL for a flag the platform does not have. Neither name is followed.
    /// </summary>
    public static int Rename(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags)
    {
        var overlay = Abi.Overlay;
        int native = overlay.NativeRenameFlags((int)flags);
        if (native < 0 || flags > int.MaxValue)
        {
            Marshal.SetLastPInvokeError(Abi.Errno.ToNative(Errno.EINVAL));
            return -1;
        }

        return overlay.HasOpenat2
            ? renameat2_native(NativeDir(olddirfd), oldpath, NativeDir(newdirfd), newpath, (uint)native)
            : renameatx_np(NativeDir(olddirfd), oldpath, NativeDir(newdirfd), newpath, (uint)native);
    }

    /// <summary>fdopendir(3) (the 64-bit-inode one).</summary>
    public static nint fdopendir(int fd) => Abi.Overlay.Inode64Symbols ? fdopendir_inode64(fd) : fdopendir_native(fd);

    /// <summary>rewinddir(3) of a directory stream from <see cref="fdopendir"/>.</summary>
    public static void rewinddir(nint dir)
    {
        if (Abi.Overlay.Inode64Symbols)
        {
            rewinddir_inode64(dir);
        }
        else
        {
            rewinddir_native(dir);
        }
    }

    /// <summary>lseek(2) with a canonical whence (SEEK_DATA 3 / SEEK_HOLE 4 are swapped on macOS).</summary>
    public static long lseek(int fd, long offset, int whence) => lseek_native(fd, offset, Abi.Whence.ToNative(whence));

    /// <summary>
    /// readdir(3) decoded through the platform's struct dirent: false at the end (or on error: errno set, 0 at the
    /// end), else the entry's inode, DT_* type and NUL-terminated name (valid until the next call).
    /// </summary>
    public static bool ReadDirectoryEntry(nint dir, out ulong inode, out byte type, out byte* name)
    {
        var overlay = Abi.Overlay;
        Marshal.SetLastPInvokeError(0);
        byte* entry = overlay.Inode64Symbols ? readdir_inode64(dir) : readdir_native(dir);
        if (entry == null)
        {
            inode = 0;
            type = 0;
            name = null;
            return false;
        }

        DecodeDirent(overlay, entry, out inode, out type, out name);
        return true;
    }

    /// <summary>Reads one struct dirent laid out as <paramref name="overlay"/> says (tests use it on synthetic records).</summary>
    public static void DecodeDirent(OverlayAbi overlay, byte* entry, out ulong inode, out byte type, out byte* name)
    {
        ArgumentNullException.ThrowIfNull(overlay);
        inode = (ulong)overlay.DirentInode.Read(entry);
        type = (byte)overlay.DirentType.Read(entry);
        name = entry + overlay.DirentName;
    }

    /// <summary>
    /// Opens the entry <paramref name="name"/> of <paramref name="dirfd"/> itself, never following it (a symlink is
    /// opened as the link), for fstat and the *Pinned calls: the descriptor, or -1 and errno.
    /// </summary>
    public static int OpenPinned(int dirfd, byte* name)
    {
        var abi = Abi;
        if (abi.Overlay.PinNativeFlags == 0)
        {
            return openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
        }

        int flags = abi.OpenFlags.ToNative(O_RDONLY | O_NONBLOCK | O_CLOEXEC) | abi.Overlay.PinNativeFlags;
        return OpenAtNative(abi, NativeDir(dirfd), name, flags, 0);
    }

    /// <summary>fchown of a pinned descriptor (the entry itself, even a symlink).</summary>
    public static int ChownPinned(int fd, uint owner, uint group)
    {
        if (Abi.Overlay.PinNativeFlags != 0)
        {
            return fchown(fd, owner, group);
        }

        byte empty = 0;
        return fchownat_native(fd, &empty, owner, group, AT_EMPTY_PATH);
    }

    /// <summary>fchmod of a pinned descriptor (not of a symlink: callers refuse those first).</summary>
    public static int ChmodPinned(int fd, uint mode)
    {
        if (Abi.Overlay.PinNativeFlags != 0)
        {
            return fchmod(fd, mode);
        }

        byte* proc = stackalloc byte[32];
        return fchmodat(AT_FDCWD, ProcPath(fd, proc), mode, 0);
    }

    /// <summary>futimens of a pinned descriptor (canonical UTIME_NOW/UTIME_OMIT).</summary>
    public static int SetTimesPinned(int fd, Timespec* times)
    {
        if (Abi.Overlay.PinNativeFlags != 0)
        {
            return futimens(fd, times);
        }

        byte* proc = stackalloc byte[32];
        return utimensat_native(AT_FDCWD, ProcPath(fd, proc), times, 0);
    }

    /// <summary>openat with native flags, the mode padded onto the stack where variadic arguments go there.</summary>
    private static int OpenAtNative(NativeAbi abi, int nativeDir, byte* path, int nativeFlags, uint mode) =>
        abi.VariadicArgumentsOnStack
            ? openat_padded(nativeDir, path, nativeFlags, 0, 0, 0, 0, 0, (nint)mode)
            : openat_native(nativeDir, path, nativeFlags, mode);

    /// <summary>/proc/self/fd/<paramref name="fd"/>, NUL-terminated, in <paramref name="buffer"/> (32 bytes; Linux only).</summary>
    private static byte* ProcPath(int fd, byte* buffer)
    {
        System.Text.Unicode.Utf8.TryWrite(new Span<byte>(buffer, 32), $"/proc/self/fd/{fd}\0", out _);
        return buffer;
    }

    private static int NativeDir(int dirfd) => dirfd == AT_FDCWD ? Abi.AtFdCwd : dirfd;

    /// <summary>The two timespecs with UTIME_NOW/UTIME_OMIT as the platform spells them (the same pointer where they agree).</summary>
    private static Timespec* NativeTimes(Timespec* times, Timespec* buffer) => NativeTimes(Abi, times, buffer);

    /// <summary>The two timespecs as <paramref name="abi"/> spells UTIME_NOW/UTIME_OMIT (tests name the ABI).</summary>
    internal static Timespec* NativeTimes(NativeAbi abi, Timespec* times, Timespec* buffer)
    {
        ArgumentNullException.ThrowIfNull(abi);
        if (times == null || abi.UtimeNow == NativeAbi.LinuxX64.UtimeNow)
        {
            return times;
        }

        for (int i = 0; i < 2; i++)
        {
            long ns = times[i].Nanoseconds;
            buffer[i].Seconds = times[i].Seconds;
            buffer[i].Nanoseconds = ns == NativeAbi.LinuxX64.UtimeNow ? abi.UtimeNow : ns == NativeAbi.LinuxX64.UtimeOmit ? abi.UtimeOmit : ns;
        }

        return buffer;
    }

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "openat", SetLastError = true)]
    private static partial int openat_padded(int dirfd, byte* path, int flags, nint r3, nint r4, nint r5, nint r6, nint r7, nint mode);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl_padded(int fd, int cmd, nint r2, nint r3, nint r4, nint r5, nint r6, nint r7, nint arg);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fstat$INODE64", SetLastError = true)]
    private static partial int fstat_inode64(int fd, Stat* buf);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fstatat$INODE64", SetLastError = true)]
    private static partial int fstatat_inode64(int dirfd, byte* path, Stat* buf, int flags);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "fdopendir$INODE64", SetLastError = true)]
    private static partial nint fdopendir_inode64(int fd);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "readdir$INODE64", SetLastError = true)]
    private static partial byte* readdir_inode64(nint dir);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "rewinddir$INODE64", SetLastError = true)]
    private static partial void rewinddir_inode64(nint dir);

    [LibraryImport(NativeLibraries.LibC, EntryPoint = "renameatx_np", SetLastError = true)]
    private static partial int renameatx_np(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags);
}
