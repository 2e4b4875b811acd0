using System.Runtime.InteropServices;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - This file is the ONE table of native struct layouts for linux-x64 (glibc; musl agrees) with libfuse 3.x
//   (FUSE_USE_VERSION 31..314). Offsets were verified with offsetof on Debian 12 / libfuse 3.14 and are checked
//   again by StructLayoutTests (a gcc-compiled program prints the C numbers).
// - Stat, StatVfs and Timespec are also the canonical forms the file systems fill on every platform: where the
//   native struct stat/statvfs differ (linux-arm64's 128-byte asm-generic stat, macOS's Darwin stat and 32-bit
//   statvfs counters) FuseCallbacks copies through BackupFuse.Core.Native.NativeAbi. The libfuse structs below
//   (fuse_file_info, fuse_config, fuse_conn_info, fuse_args, fuse_context, fuse_operations) contain only
//   fixed-width and pointer members and are the same on every LP64 libfuse 3 (checked for arm64 by
//   NativeAbiTests; macFUSE's libfuse3 is assumed to keep upstream's prefix, not verified on a Mac).
// - Every struct is blittable with explicit offsets so it can be used through pointers handed to us by libfuse.
//   Structs that libfuse owns and that grow in newer releases (fuse_file_info, fuse_config, fuse_conn_info) are
//   only ever accessed through pointers, so a longer native struct is harmless.

/// <summary>struct timespec.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct Timespec
{
    /// <summary>tv_sec.</summary>
    [FieldOffset(0)] public long Seconds;

    /// <summary>tv_nsec (or UTIME_NOW / UTIME_OMIT in utimensat).</summary>
    [FieldOffset(8)] public long Nanoseconds;
}

/// <summary>struct stat (glibc x86_64, 144 bytes; st_nlink is 64-bit and precedes st_mode); the canonical form on every platform.</summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
public struct Stat
{
    /// <summary>st_dev.</summary>
    [FieldOffset(0)] public ulong Device;

    /// <summary>st_ino.</summary>
    [FieldOffset(8)] public ulong Inode;

    /// <summary>st_nlink.</summary>
    [FieldOffset(16)] public ulong LinkCount;

    /// <summary>st_mode (file type and permission bits).</summary>
    [FieldOffset(24)] public uint Mode;

    /// <summary>st_uid.</summary>
    [FieldOffset(28)] public uint Uid;

    /// <summary>st_gid.</summary>
    [FieldOffset(32)] public uint Gid;

    /// <summary>st_rdev.</summary>
    [FieldOffset(40)] public ulong RDevice;

    /// <summary>st_size.</summary>
    [FieldOffset(48)] public long Size;

    /// <summary>st_blksize.</summary>
    [FieldOffset(56)] public long BlockSize;

    /// <summary>st_blocks (512-byte units).</summary>
    [FieldOffset(64)] public long Blocks;

    /// <summary>st_atim.</summary>
    [FieldOffset(72)] public Timespec AccessTime;

    /// <summary>st_mtim.</summary>
    [FieldOffset(88)] public Timespec ModifyTime;

    /// <summary>st_ctim.</summary>
    [FieldOffset(104)] public Timespec ChangeTime;
}

/// <summary>struct statvfs (glibc x86_64, 112 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 112)]
public struct StatVfs
{
    /// <summary>f_bsize.</summary>
    [FieldOffset(0)] public ulong BlockSize;

    /// <summary>f_frsize.</summary>
    [FieldOffset(8)] public ulong FragmentSize;

    /// <summary>f_blocks.</summary>
    [FieldOffset(16)] public ulong Blocks;

    /// <summary>f_bfree.</summary>
    [FieldOffset(24)] public ulong BlocksFree;

    /// <summary>f_bavail.</summary>
    [FieldOffset(32)] public ulong BlocksAvailable;

    /// <summary>f_files.</summary>
    [FieldOffset(40)] public ulong Files;

    /// <summary>f_ffree.</summary>
    [FieldOffset(48)] public ulong FilesFree;

    /// <summary>f_favail.</summary>
    [FieldOffset(56)] public ulong FilesAvailable;

    /// <summary>f_fsid.</summary>
    [FieldOffset(64)] public ulong FileSystemId;

    /// <summary>f_flag.</summary>
    [FieldOffset(72)] public ulong Flags;

    /// <summary>f_namemax.</summary>
    [FieldOffset(80)] public ulong NameMax;
}

/// <summary>struct fuse_file_info (libfuse 3; 40 bytes in 3.14, longer later with the same prefix).</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public struct FuseFileInfo
{
    /// <summary>Bit of <see cref="Bits"/>: direct_io.</summary>
    public const uint DirectIoBit = 1u << 1;

    /// <summary>Bit of <see cref="Bits"/>: keep_cache.</summary>
    public const uint KeepCacheBit = 1u << 2;

    /// <summary>Bit of <see cref="Bits"/>: nonseekable.</summary>
    public const uint NonSeekableBit = 1u << 4;

    /// <summary>open(2) flags.</summary>
    [FieldOffset(0)] public int Flags;

    /// <summary>The bit-field word: writepage, direct_io, keep_cache, flush, nonseekable, ... (LSB first).</summary>
    [FieldOffset(4)] public uint Bits;

    /// <summary>File handle chosen by the file system in open/create/opendir.</summary>
    [FieldOffset(16)] public ulong Fh;

    /// <summary>lock_owner.</summary>
    [FieldOffset(24)] public ulong LockOwner;

    /// <summary>poll_events.</summary>
    [FieldOffset(32)] public uint PollEvents;

    /// <summary>direct_io: bypass the kernel page cache for this open file.</summary>
    public bool DirectIo
    {
        readonly get => (Bits & DirectIoBit) != 0;
        set => Bits = value ? Bits | DirectIoBit : Bits & ~DirectIoBit;
    }

    /// <summary>keep_cache: do not invalidate the page cache on open.</summary>
    public bool KeepCache
    {
        readonly get => (Bits & KeepCacheBit) != 0;
        set => Bits = value ? Bits | KeepCacheBit : Bits & ~KeepCacheBit;
    }
}

/// <summary>struct fuse_config (libfuse 3.14: 128 bytes), filled in place by init.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
public struct FuseConfig
{
    /// <summary>set_gid.</summary>
    [FieldOffset(0)] public int SetGid;

    /// <summary>gid.</summary>
    [FieldOffset(4)] public uint Gid;

    /// <summary>set_uid.</summary>
    [FieldOffset(8)] public int SetUid;

    /// <summary>uid.</summary>
    [FieldOffset(12)] public uint Uid;

    /// <summary>set_mode.</summary>
    [FieldOffset(16)] public int SetMode;

    /// <summary>umask.</summary>
    [FieldOffset(20)] public uint Umask;

    /// <summary>entry_timeout (seconds).</summary>
    [FieldOffset(24)] public double EntryTimeout;

    /// <summary>negative_timeout (seconds).</summary>
    [FieldOffset(32)] public double NegativeTimeout;

    /// <summary>attr_timeout (seconds).</summary>
    [FieldOffset(40)] public double AttrTimeout;

    /// <summary>intr.</summary>
    [FieldOffset(48)] public int Intr;

    /// <summary>intr_signal.</summary>
    [FieldOffset(52)] public int IntrSignal;

    /// <summary>remember.</summary>
    [FieldOffset(56)] public int Remember;

    /// <summary>hard_remove: unlink open files for real instead of renaming them to .fuse_hidden*.</summary>
    [FieldOffset(60)] public int HardRemove;

    /// <summary>use_ino: honour st_ino from getattr.</summary>
    [FieldOffset(64)] public int UseIno;

    /// <summary>readdir_ino.</summary>
    [FieldOffset(68)] public int ReaddirIno;

    /// <summary>direct_io (for every open).</summary>
    [FieldOffset(72)] public int DirectIo;

    /// <summary>kernel_cache.</summary>
    [FieldOffset(76)] public int KernelCache;

    /// <summary>auto_cache.</summary>
    [FieldOffset(80)] public int AutoCache;

    /// <summary>no_rofd_flush.</summary>
    [FieldOffset(84)] public int NoReadOnlyFdFlush;

    /// <summary>ac_attr_timeout_set.</summary>
    [FieldOffset(88)] public int AcAttrTimeoutSet;

    /// <summary>ac_attr_timeout.</summary>
    [FieldOffset(96)] public double AcAttrTimeout;

    /// <summary>nullpath_ok: operations on an open handle get a NULL path (no path building per read/write).</summary>
    [FieldOffset(104)] public int NullPathOk;

    /// <summary>show_help.</summary>
    [FieldOffset(108)] public int ShowHelp;

    /// <summary>modules.</summary>
    [FieldOffset(112)] public nint Modules;

    /// <summary>debug.</summary>
    [FieldOffset(120)] public int Debug;
}

/// <summary>struct fuse_conn_info (libfuse 3.14: 128 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
public struct FuseConnInfo
{
    /// <summary>proto_major.</summary>
    [FieldOffset(0)] public uint ProtoMajor;

    /// <summary>proto_minor.</summary>
    [FieldOffset(4)] public uint ProtoMinor;

    /// <summary>max_write.</summary>
    [FieldOffset(8)] public uint MaxWrite;

    /// <summary>max_read (must equal the -o max_read mount option when set).</summary>
    [FieldOffset(12)] public uint MaxRead;

    /// <summary>max_readahead.</summary>
    [FieldOffset(16)] public uint MaxReadahead;

    /// <summary>capable (FUSE_CAP_*).</summary>
    [FieldOffset(20)] public uint Capable;

    /// <summary>want (FUSE_CAP_*).</summary>
    [FieldOffset(24)] public uint Want;

    /// <summary>max_background.</summary>
    [FieldOffset(28)] public uint MaxBackground;

    /// <summary>congestion_threshold.</summary>
    [FieldOffset(32)] public uint CongestionThreshold;

    /// <summary>time_gran.</summary>
    [FieldOffset(36)] public uint TimeGranularity;
}

/// <summary>struct fuse_args (24 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
public unsafe struct FuseArgs
{
    /// <summary>argc.</summary>
    [FieldOffset(0)] public int Argc;

    /// <summary>argv (malloc'ed by fuse_opt_add_arg).</summary>
    [FieldOffset(8)] public byte** Argv;

    /// <summary>allocated.</summary>
    [FieldOffset(16)] public int Allocated;
}

/// <summary>struct fuse_context (40 bytes), per request, from fuse_get_context().</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public struct FuseContext
{
    /// <summary>fuse.</summary>
    [FieldOffset(0)] public nint Fuse;

    /// <summary>uid of the calling process.</summary>
    [FieldOffset(8)] public uint Uid;

    /// <summary>gid of the calling process.</summary>
    [FieldOffset(12)] public uint Gid;

    /// <summary>pid of the calling process.</summary>
    [FieldOffset(16)] public int Pid;

    /// <summary>private_data (what init returned; our session's GCHandle).</summary>
    [FieldOffset(24)] public nint PrivateData;

    /// <summary>umask of the calling process.</summary>
    [FieldOffset(32)] public uint Umask;
}

/// <summary>struct dirent as returned by glibc readdir on x86_64 (d_name starts at 19).</summary>
[StructLayout(LayoutKind.Explicit, Size = 280)]
public struct Dirent
{
    /// <summary>d_ino.</summary>
    [FieldOffset(0)] public ulong Inode;

    /// <summary>d_off.</summary>
    [FieldOffset(8)] public long Offset;

    /// <summary>d_reclen.</summary>
    [FieldOffset(16)] public ushort RecordLength;

    /// <summary>d_type (DT_*).</summary>
    [FieldOffset(18)] public byte Type;

    /// <summary>First byte of d_name (NUL-terminated).</summary>
    [FieldOffset(19)] public byte Name;
}

/// <summary>struct fuse_operations for FUSE_USE_VERSION 31..314: 42 function pointers, 336 bytes, this exact order.</summary>
[StructLayout(LayoutKind.Explicit, Size = 336)]
public unsafe struct FuseOperations
{
#pragma warning disable CS1591 // member names are the C member names; signatures are the C signatures
    [FieldOffset(0)] public delegate* unmanaged[Cdecl]<byte*, Stat*, FuseFileInfo*, int> getattr;
    [FieldOffset(8)] public delegate* unmanaged[Cdecl]<byte*, byte*, nuint, int> readlink;
    [FieldOffset(16)] public delegate* unmanaged[Cdecl]<byte*, uint, ulong, int> mknod;
    [FieldOffset(24)] public delegate* unmanaged[Cdecl]<byte*, uint, int> mkdir;
    [FieldOffset(32)] public delegate* unmanaged[Cdecl]<byte*, int> unlink;
    [FieldOffset(40)] public delegate* unmanaged[Cdecl]<byte*, int> rmdir;
    [FieldOffset(48)] public delegate* unmanaged[Cdecl]<byte*, byte*, int> symlink;
    [FieldOffset(56)] public delegate* unmanaged[Cdecl]<byte*, byte*, uint, int> rename;
    [FieldOffset(64)] public delegate* unmanaged[Cdecl]<byte*, byte*, int> link;
    [FieldOffset(72)] public delegate* unmanaged[Cdecl]<byte*, uint, FuseFileInfo*, int> chmod;
    [FieldOffset(80)] public delegate* unmanaged[Cdecl]<byte*, uint, uint, FuseFileInfo*, int> chown;
    [FieldOffset(88)] public delegate* unmanaged[Cdecl]<byte*, long, FuseFileInfo*, int> truncate;
    [FieldOffset(96)] public delegate* unmanaged[Cdecl]<byte*, FuseFileInfo*, int> open;
    [FieldOffset(104)] public delegate* unmanaged[Cdecl]<byte*, byte*, nuint, long, FuseFileInfo*, int> read;
    [FieldOffset(112)] public delegate* unmanaged[Cdecl]<byte*, byte*, nuint, long, FuseFileInfo*, int> write;
    [FieldOffset(120)] public delegate* unmanaged[Cdecl]<byte*, StatVfs*, int> statfs;
    [FieldOffset(128)] public delegate* unmanaged[Cdecl]<byte*, FuseFileInfo*, int> flush;
    [FieldOffset(136)] public delegate* unmanaged[Cdecl]<byte*, FuseFileInfo*, int> release;
    [FieldOffset(144)] public delegate* unmanaged[Cdecl]<byte*, int, FuseFileInfo*, int> fsync;
    [FieldOffset(152)] public nint setxattr;
    [FieldOffset(160)] public nint getxattr;
    [FieldOffset(168)] public nint listxattr;
    [FieldOffset(176)] public nint removexattr;
    [FieldOffset(184)] public delegate* unmanaged[Cdecl]<byte*, FuseFileInfo*, int> opendir;
    [FieldOffset(192)] public delegate* unmanaged[Cdecl]<byte*, void*, delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int>, long, FuseFileInfo*, int, int> readdir;
    [FieldOffset(200)] public delegate* unmanaged[Cdecl]<byte*, FuseFileInfo*, int> releasedir;
    [FieldOffset(208)] public delegate* unmanaged[Cdecl]<byte*, int, FuseFileInfo*, int> fsyncdir;
    [FieldOffset(216)] public delegate* unmanaged[Cdecl]<FuseConnInfo*, FuseConfig*, void*> init;
    [FieldOffset(224)] public delegate* unmanaged[Cdecl]<void*, void> destroy;
    [FieldOffset(232)] public nint access;
    [FieldOffset(240)] public delegate* unmanaged[Cdecl]<byte*, uint, FuseFileInfo*, int> create;
    [FieldOffset(248)] public nint @lock;
    [FieldOffset(256)] public delegate* unmanaged[Cdecl]<byte*, Timespec*, FuseFileInfo*, int> utimens;
    [FieldOffset(264)] public nint bmap;
    [FieldOffset(272)] public nint ioctl;
    [FieldOffset(280)] public nint poll;
    [FieldOffset(288)] public nint write_buf;
    [FieldOffset(296)] public nint read_buf;
    [FieldOffset(304)] public nint flock;
    [FieldOffset(312)] public delegate* unmanaged[Cdecl]<byte*, int, long, long, FuseFileInfo*, int> fallocate;
    [FieldOffset(320)] public nint copy_file_range;
    [FieldOffset(328)] public delegate* unmanaged[Cdecl]<byte*, long, int, FuseFileInfo*, long> lseek;
#pragma warning restore CS1591
}
