using System.Runtime.InteropServices;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - Entry points are bound by their plain exported names, chosen so that they mean the same thing on every
//   libfuse 3.x that has them: fuse_new_31 (the unversioned fuse_new vanished in 3.17), fuse_loop_mt_312 with
//   the opaque fuse_loop_cfg_* API when fuse_version() >= 312, else fuse_loop_mt_31(f, clone_fd) (3.2+).
//   Never bind plain "fuse_loop_mt": its default version changed signature in 3.12.
// - All signatures are blittable (DisableRuntimeMarshalling); strings are passed as NUL-terminated UTF-8 pointers.

/// <summary>libfuse3 high-level API entry points.</summary>
internal static unsafe partial class LibFuse
{
    static LibFuse() => NativeLibraries.EnsureRegistered();

    [LibraryImport(NativeLibraries.Fuse, EntryPoint = "fuse_new_31")]
    public static partial nint fuse_new(FuseArgs* args, FuseOperations* op, nuint opSize, nint userData);

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
