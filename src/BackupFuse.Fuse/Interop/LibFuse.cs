using System.Runtime.InteropServices;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - Entry points are bound by their plain exported names, chosen so that they mean the same thing on every
//   libfuse 3.x that has them: fuse_new_31 (the unversioned fuse_new vanished in 3.17), fuse_loop_mt_312 with
//   the opaque fuse_loop_cfg_* API when fuse_version() >= 312, else fuse_loop_mt_31(f, clone_fd) (3.2+).
//   Never bind plain "fuse_loop_mt": its default version changed signature in 3.12.
// - On macOS (macFUSE's libfuse3) fuse_new is _fuse_new_31 with a struct libfuse_version whose darwin_extensions_enabled
//   bit is clear: the plain callbacks and struct stat/statvfs are used (see NativeAbi).
// - All signatures are blittable (DisableRuntimeMarshalling); strings are passed as NUL-terminated UTF-8 pointers.

/// <summary>libfuse3 high-level API entry points.</summary>
internal static unsafe partial class LibFuse
{
    static LibFuse() => NativeLibraries.EnsureRegistered();

    /// <summary>fuse_new through the platform's entry point (NativeAbi.FuseNewEntryPoint).</summary>
    public static nint fuse_new(FuseArgs* args, FuseOperations* op, nuint opSize, nint userData)
    {
        if (BackupFuse.Core.Native.NativeAbi.Current is { FuseNewEntryPoint: "_fuse_new_31" })
        {
            var version = LibfuseVersion.WithoutDarwinExtensions;
            return _fuse_new_31(args, op, opSize, &version, userData);
        }

        return fuse_new_31(args, op, opSize, userData);
    }

    [LibraryImport(NativeLibraries.Fuse)]
    private static partial nint fuse_new_31(FuseArgs* args, FuseOperations* op, nuint opSize, nint userData);

    [LibraryImport(NativeLibraries.Fuse)]
    private static partial nint _fuse_new_31(FuseArgs* args, FuseOperations* op, nuint opSize, LibfuseVersion* version, nint userData);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial int fuse_mount(nint fuse, byte* mountpoint);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_unmount(nint fuse);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_destroy(nint fuse);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_exit(nint fuse);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial int fuse_loop_mt_312(nint fuse, nint loopConfig);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial int fuse_loop_mt_31(nint fuse, int cloneFd);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial nint fuse_loop_cfg_create();

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_loop_cfg_destroy(nint config);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_loop_cfg_set_clone_fd(nint config, uint value);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_loop_cfg_set_max_threads(nint config, uint value);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial int fuse_opt_add_arg(FuseArgs* args, byte* arg);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial void fuse_opt_free_args(FuseArgs* args);

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial FuseContext* fuse_get_context();

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial int fuse_version();

    [LibraryImport(NativeLibraries.Fuse)]
    public static partial byte* fuse_pkgversion();
}

/// <summary>struct libfuse_version (libfuse include/fuse_common.h: four uint32; on macFUSE bit 0 of the fourth is darwin_extensions_enabled).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LibfuseVersion
{
    /// <summary>Bit of <see cref="Padding"/> that macFUSE reads as darwin_extensions_enabled.</summary>
    public const uint DarwinExtensionsEnabledBit = 1;

    public uint Major;
    public uint Minor;
    public uint Hotfix;
    public uint Padding;

    /// <summary>The API level the callback table is written for (3.17, the macFUSE libfuse3 base) with the Darwin extensions off.</summary>
    public static LibfuseVersion WithoutDarwinExtensions => new() { Major = 3, Minor = 17, Hotfix = 0, Padding = 0 };
}
