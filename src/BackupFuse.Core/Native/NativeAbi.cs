using System.Runtime.InteropServices;

namespace BackupFuse.Core.Native;

// Design notes:
// - The ONE place that knows which platform the process runs on. Current is chosen once, from
//   RuntimeInformation (OS + process architecture), and everything platform-dependent in the binding goes through
//   it: struct stat / statvfs layouts, errno numbers, open(2) flag bits, the libfuse file names and entry point,
//   whether -o auto_unmount exists, whether O_DIRECT exists, how variadic libc calls are passed. The rest of the
//   product sees only the canonical forms (the FUSE binding's Stat/StatVfs/Errno/LibC.O_*, the image readers'
//   constants), which are the linux-x64 numbers. It lives in Core so every native-call site can use it.
// - Three tables: LinuxX64 (identity: the canonical forms ARE its native forms, so that path is byte-for-byte what
//   it always was), LinuxArm64 (glibc asm-generic struct stat, arm64 O_* bits), MacOS (Darwin 64-bit-inode
//   struct stat, 32-bit statvfs counters, BSD errno and O_* numbers; the same for arm64 and x86_64 Macs).
//   Each table cites the header it was taken from next to the numbers (NativeAbi.Tables.cs); NativeAbiTests
//   checks every number against those citations.
// - The libfuse API is libfuse 3 everywhere (high-level, path based, the same 42-member fuse_operations prefix).
//   On macOS it is macFUSE's libfuse3 (3.17-based, macFUSE >= 4.10): fuse_new is bound as _fuse_new_31 with a
//   struct libfuse_version whose fourth word has bit 0 (darwin_extensions_enabled) CLEAR, so macFUSE calls the
//   plain callbacks (getattr with struct stat, readdir with fuse_fill_dir_t, statfs with struct statvfs,
//   utimens with timespec[2], xattrs without position) and the same callback set serves every platform.
// - FUSE-T (libfuse-t.dylib) implements the libfuse 2 API only (macos-fuse-t/fuse-t#93, macos-fuse-t/sshfs#3):
//   a libfuse 2 fuse_operations table (getdir, utime, no fi arguments, different fuse_file_info bits) is not
//   written. The lookup finds libfuse-t.dylib and reports that precisely instead of binding it wrongly; a
//   libfuse-t.dylib that exports _fuse_new_31 (a future libfuse3 FUSE-T) is accepted.
// - Variadic calls: Apple's arm64 ABI puts every variadic argument on the stack ("Writing ARM64 code for Apple
//   platforms", developer.apple.com), while a P/Invoke passes it in the next register. openat's mode and fcntl's
//   argument would be garbage there; VariadicArgumentsOnStack tells the wrappers to pad the registers first.
// - The pass-through overlay's calls (openat2, O_PATH, renameat2, fallocate, struct dirent, the $INODE64 symbols)
//   are in Overlay (OverlayAbi.cs, NativeAbi.Overlay.cs); see docs/operations.md "macOS".

/// <summary>The native ABI of the platform the process runs on (see design notes).</summary>
public sealed partial record NativeAbi
{
    private static readonly Lazy<NativeAbi?> CurrentAbi = new(() => For(CurrentOs(), RuntimeInformation.ProcessArchitecture));

    private NativeAbi()
    {
    }

    /// <summary>The ABI of this process, or null on a platform without a table (Windows, 32-bit, ...).</summary>
    public static NativeAbi? Current => CurrentAbi.Value;

    /// <summary>A short name: linux-x64, linux-arm64, osx-arm64, osx-x64.</summary>
    public required string Name { get; init; }

    /// <summary>True on macOS.</summary>
    public required bool IsMacOS { get; init; }

    /// <summary>struct stat.</summary>
    public required StatLayout Stat { get; init; }

    /// <summary>struct statvfs.</summary>
    public required StatVfsLayout StatVfs { get; init; }

    /// <summary>errno numbers (canonical = linux).</summary>
    public required CodeMap Errno { get; init; }

    /// <summary>open(2) flag bits (canonical = linux-x64).</summary>
    public required CodeMap OpenFlags { get; init; }

    /// <summary>lseek whence values (canonical = linux: SEEK_DATA 3, SEEK_HOLE 4; macOS has them the other way round).</summary>
    public required CodeMap Whence { get; init; }

    /// <summary>UTIME_NOW: the tv_nsec value of utimensat/futimens/FUSE utimens meaning "now" (Linux (1 &lt;&lt; 30) - 1).</summary>
    public required long UtimeNow { get; init; }

    /// <summary>UTIME_OMIT: the tv_nsec value meaning "leave unchanged" (Linux (1 &lt;&lt; 30) - 2).</summary>
    public required long UtimeOmit { get; init; }

    /// <summary>A native tv_nsec as the canonical one (UTIME_NOW/UTIME_OMIT sentinels translated, times unchanged).</summary>
    public long ToCanonicalNanoseconds(long native) =>
        native == UtimeNow ? LinuxX64.UtimeNow : native == UtimeOmit ? LinuxX64.UtimeOmit : native;

    /// <summary>AT_FDCWD.</summary>
    public required int AtFdCwd { get; init; }

    /// <summary>AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR (canonical = linux).</summary>
    public required CodeMap AtFlags { get; init; }

    /// <summary>The libfuse3 files to try, in order (first that loads and has the entry points wins).</summary>
    public required IReadOnlyList<string> FuseLibraryNames { get; init; }

    /// <summary>What to install when none of <see cref="FuseLibraryNames"/> loads.</summary>
    public required string FuseInstallHint { get; init; }

    /// <summary>
    /// The fuse_new entry point: "fuse_new_31" (args, op, op_size, user_data) on Linux (the plain name means the
    /// same in every libfuse 3.1+), "_fuse_new_31" (args, op, op_size, struct libfuse_version*, user_data) on macOS.
    /// </summary>
    public required string FuseNewEntryPoint { get; init; }

    /// <summary>Whether -o auto_unmount exists (a fusermount3 feature; macFUSE and FUSE-T have none).</summary>
    public required bool SupportsAutoUnmount { get; init; }

    /// <summary>O_DIRECT in native bits, or 0 where the platform has none (macOS: use fcntl F_NOCACHE).</summary>
    public int ODirect => OpenFlags.ToNative(CanonicalODirect) & ~0x3;

    /// <summary>
    /// True where variadic arguments go on the stack even when registers are free (Apple arm64): the optional
    /// argument of open/openat/fcntl must then be passed after padding the eight argument registers.
    /// </summary>
    public required bool VariadicArgumentsOnStack { get; init; }

    /// <summary>The canonical (linux-x64) O_DIRECT bit.</summary>
    public const int CanonicalODirect = 0x4000;

    /// <summary>fcntl(F_NOCACHE) command (macOS 48), or 0 where there is none.</summary>
    public required int FNoCache { get; init; }

    /// <summary>Whether openat2(2), renameat2(2), O_PATH, fallocate(2) and umount2(2) exist (Linux only).</summary>
    public required bool HasLinuxFileCalls { get; init; }

    /// <summary>The table for an OS and architecture, or null when there is none.</summary>
    public static NativeAbi? For(OSPlatform os, Architecture architecture)
    {
        if (os == OSPlatform.Linux)
        {
            return architecture switch
            {
                Architecture.X64 => LinuxX64,
                Architecture.Arm64 => LinuxArm64,
                _ => null,
            };
        }

        if (os == OSPlatform.OSX)
        {
            return architecture switch
            {
                Architecture.Arm64 => MacOSArm64,
                Architecture.X64 => MacOSX64,
                _ => null,
            };
        }

        return null;
    }

    /// <summary>Why there is no table here (for error messages).</summary>
    public static string UnsupportedReason =>
        $"FUSE is supported on linux-x64, linux-arm64, osx-arm64 and osx-x64; this is {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture}";

    private static OSPlatform CurrentOs() =>
        OperatingSystem.IsLinux() ? OSPlatform.Linux : OperatingSystem.IsMacOS() ? OSPlatform.OSX : OSPlatform.Create("other");
}
