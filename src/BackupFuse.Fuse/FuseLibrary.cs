using System.Runtime.InteropServices;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

/// <summary>Whether FUSE can be used here, and which libfuse is loaded.</summary>
public static unsafe class FuseLibrary
{
    /// <summary>Oldest libfuse accepted (major*100+minor): 3.2, the first with fuse_loop_mt_31.</summary>
    public const int MinimumVersion = 302;

    private static readonly Lazy<string?> Problem = new(FindProblem);

    /// <summary>True when the platform has an ABI table (linux-x64/arm64, macOS), libfuse3 loads and (Linux) /dev/fuse exists.</summary>
    public static bool IsAvailable => Problem.Value == null;

    /// <summary>Why FUSE is unavailable (names the package to install), or null.</summary>
    public static string? UnavailableReason => Problem.Value;

    /// <summary>fuse_version(), e.g. 314 for 3.14.</summary>
    public static int Version
    {
        get
        {
            ThrowIfUnavailable();
            return LibFuse.fuse_version();
        }
    }

    /// <summary>fuse_pkgversion(), e.g. "3.14.0".</summary>
    public static string PackageVersion
    {
        get
        {
            ThrowIfUnavailable();
            return Marshal.PtrToStringUTF8((nint)LibFuse.fuse_pkgversion()) ?? "?";
        }
    }

    /// <summary>Throws <see cref="PlatformNotSupportedException"/> with <see cref="UnavailableReason"/>.</summary>
    public static void ThrowIfUnavailable()
    {
        if (Problem.Value is { } reason)
        {
            throw new PlatformNotSupportedException(reason);
        }
    }

    private static string? FindProblem()
    {
        var abi = BackupFuse.Core.Native.NativeAbi.Current;
        if (abi == null)
        {
            return BackupFuse.Core.Native.NativeAbi.UnsupportedReason;
        }

        NativeLibraries.EnsureRegistered();
        if (!NativeLibraries.TryLoadFuse(out _, out var problem))
        {
            return problem;
        }

        if (!abi.IsMacOS && !File.Exists("/dev/fuse"))
        {
            return "/dev/fuse is missing: load the kernel module (modprobe fuse), or in a container pass --device /dev/fuse --cap-add SYS_ADMIN";
        }

        int version = LibFuse.fuse_version();
        if (version < MinimumVersion)
        {
            return $"libfuse {version / 100}.{version % 100} is too old: 3.2 or newer is needed";
        }

        return null;
    }
}
