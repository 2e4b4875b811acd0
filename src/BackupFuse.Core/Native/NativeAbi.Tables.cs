namespace BackupFuse.Core.Native;

// The tables. Every number below is taken from the header named next to it (repository @ commit, path):
//
// [glibc-x86]   glibc sysdeps/unix/sysv/linux/x86/bits/struct_stat.h (x86_64), verified with offsetof on this machine
//               (docs: /work/shared/docs/fuse-binding.md §2.6; StructLayoutTests compiles a C program against it).
// [glibc-gen]   bminor/glibc @581c785b sysdeps/unix/sysv/linux/generic/bits/struct_stat.h (aarch64 uses it):
//               st_dev(dev_t u64) st_ino(u64) st_mode(u32) st_nlink(u32) st_uid st_gid st_rdev(u64) __pad1(u64)
//               st_size(i64) st_blksize(int) __pad2(int) st_blocks(i64) st_atim st_mtim st_ctim __glibc_reserved[2]
// [glibc-svfs]  bminor/glibc @581c785b sysdeps/unix/sysv/linux/bits/statvfs.h: on LP64 every counter is 64-bit,
//               f_fsid/f_flag/f_namemax unsigned long, then __f_spare[6] (112 bytes on x86_64 and aarch64).
// [glibc-a64]   bminor/glibc @d614a753 sysdeps/unix/sysv/linux/aarch64/bits/fcntl.h: __O_DIRECTORY 040000,
//               __O_NOFOLLOW 0100000, __O_DIRECT 0200000; torvalds/linux @fbda16fb
//               arch/arm64/include/uapi/asm/fcntl.h: the same plus O_LARGEFILE 0400000 (what the kernel puts in
//               the open flags FUSE hands us). All other O_* bits come from asm-generic and equal x86_64's.
// [xnu-stat]    apple-oss-distributions/xnu @5c2921b0 bsd/sys/stat.h, __DARWIN_STRUCT_STAT64 (struct stat with
//               __DARWIN_64_BIT_INO_T, the only form on arm64 and the default on x86_64 since 10.6):
//               st_dev(dev_t = __int32_t) st_mode(mode_t = __uint16_t) st_nlink(nlink_t = __uint16_t)
//               st_ino(__uint64_t) st_uid st_gid st_rdev(__int32_t) st_atimespec st_mtimespec st_ctimespec
//               st_birthtimespec st_size(i64) st_blocks(i64) st_blksize(__int32_t) st_flags st_gen st_lspare
//               st_qspare[2] = 144 bytes; types from xnu bsd/sys/_types.h. Same header: UTIME_NOW -1, UTIME_OMIT -2,
//               and fstat/stat/fstatat declared __DARWIN_INODE64(...) (the "$INODE64" symbols on x86_64).
// [linux-utime] glibc io/sys/stat.h / Linux include/uapi/linux/stat.h: UTIME_NOW ((1l << 30) - 1l),
//               UTIME_OMIT ((1l << 30) - 2l), on every architecture.
// [xnu-svfs]    macOS SDK sys/statvfs.h (POSIX order: unsigned long f_bsize, f_frsize; fsblkcnt_t f_blocks,
//               f_bfree, f_bavail; fsfilcnt_t f_files, f_ffree, f_favail; unsigned long f_fsid, f_flag,
//               f_namemax) with __darwin_fsblkcnt_t = __darwin_fsfilcnt_t = unsigned int (xnu bsd/sys/_types.h)
//               = 64 bytes.
// [xnu-seek]    xnu bsd/sys/_types/_seek_set.h: SEEK_HOLE 3, SEEK_DATA 4 (Linux: SEEK_DATA 3, SEEK_HOLE 4).
// [xnu-errno]   apple-oss-distributions/xnu @94d3b452 bsd/sys/errno.h.
// [xnu-fcntl]   apple-oss-distributions/xnu @1031c584 bsd/sys/fcntl.h: O_NONBLOCK 0x4, O_APPEND 0x8, O_ASYNC 0x40,
//               O_SYNC 0x80 (_o_sync.h), O_NOFOLLOW 0x100, O_CREAT 0x200, O_TRUNC 0x400, O_EXCL 0x800,
//               O_NOCTTY 0x20000, O_DIRECTORY 0x100000, O_DSYNC 0x400000 (_o_dsync.h), O_CLOEXEC 0x1000000,
//               F_NOCACHE 48, AT_FDCWD -2, AT_SYMLINK_NOFOLLOW 0x20, AT_SYMLINK_FOLLOW 0x40, AT_REMOVEDIR 0x80.
//               No O_DIRECT, O_PATH, O_NOATIME, O_TMPFILE, O_LARGEFILE.
// [libfuse]     libfuse/libfuse @e8d407ce include/fuse.h: struct fuse_operations order (getattr … lseek, then
//               statx, syncfs), _fuse_new_31(args, op, op_size, struct libfuse_version*, user_data);
//               include/fuse_common.h: struct libfuse_version { uint32_t major, minor, hotfix, padding }.
// [macfuse]     macFUSE's libfuse3 (3.17-based): the fourth libfuse_version word carries bit 0
//               darwin_extensions_enabled; getattr/readdir/utimens/statfs/setxattr/getxattr are unions
//               { vanilla; darwin } of one pointer each (same slots as upstream), the Darwin-only members
//               (setattr, chflags, setvolname, …) come after the upstream ones (macFUSE lib/modules/iconv.c,
//               subdir.c; macfuse/macfuse#1064, #1065). macFUSE's include/fuse.h itself is not in the sources
//               available here: the slot offsets are upstream's and are NOT verified on a Mac.
public sealed partial record NativeAbi
{
    /// <summary>linux-x64 (glibc; musl agrees): the canonical forms themselves.</summary>
    public static NativeAbi LinuxX64 { get; } = new()
    {
        Name = "linux-x64",
        IsMacOS = false,
        Stat = new StatLayout // [glibc-x86]
        {
            StructSize = 144,
            Device = new(0, 8),
            Inode = new(8, 8),
            LinkCount = new(16, 8),
            Mode = new(24, 4),
            Uid = new(28, 4),
            Gid = new(32, 4),
            RDevice = new(40, 8),
            Size = new(48, 8),
            BlockSize = new(56, 8),
            Blocks = new(64, 8),
            AccessTime = 72,
            ModifyTime = 88,
            ChangeTime = 104,
            IsCanonical = true,
        },
        StatVfs = LinuxStatVfs(canonical: true),
        Errno = CodeMap.Identity(bitwise: false),
        OpenFlags = CodeMap.Identity(bitwise: true),
        Whence = CodeMap.Identity(bitwise: false),
        UtimeNow = (1L << 30) - 1, // [linux-utime]
        UtimeOmit = (1L << 30) - 2,
        AtFdCwd = -100,
        AtFlags = CodeMap.Identity(bitwise: true),
        FuseLibraryNames = ["libfuse3.so.3", "libfuse3.so"],
        FuseInstallHint = LinuxInstallHint,
        FuseNewEntryPoint = "fuse_new_31",
        SupportsAutoUnmount = true,
        FNoCache = 0,
        HasLinuxFileCalls = true,
        VariadicArgumentsOnStack = false,
    };

    /// <summary>linux-arm64 (glibc, asm-generic struct stat).</summary>
    public static NativeAbi LinuxArm64 { get; } = new()
    {
        Name = "linux-arm64",
        IsMacOS = false,
        Stat = new StatLayout // [glibc-gen]
        {
            StructSize = 128,
            Device = new(0, 8),
            Inode = new(8, 8),
            Mode = new(16, 4),
            LinkCount = new(20, 4),
            Uid = new(24, 4),
            Gid = new(28, 4),
            RDevice = new(32, 8),
            Size = new(48, 8),
            BlockSize = new(56, 4),
            Blocks = new(64, 8),
            AccessTime = 72,
            ModifyTime = 88,
            ChangeTime = 104,
        },
        StatVfs = LinuxStatVfs(canonical: false),
        Errno = CodeMap.Identity(bitwise: false), // asm-generic errno = x86_64's
        OpenFlags = CodeMap.Bits( // [glibc-a64]
        [
            (0x40, 0x40), (0x80, 0x80), (0x100, 0x100), (0x200, 0x200), (0x400, 0x400), (0x800, 0x800),
            (0x1000, 0x1000), (0x2000, 0x2000),
            (0x4000, 0x10000),  // O_DIRECT
            (0x8000, 0x20000),  // O_LARGEFILE
            (0x10000, 0x4000),  // O_DIRECTORY
            (0x20000, 0x8000),  // O_NOFOLLOW
            (0x40000, 0x40000), (0x80000, 0x80000), (0x100000, 0x100000), (0x200000, 0x200000), (0x400000, 0x400000),
        ]),
        Whence = CodeMap.Identity(bitwise: false),
        UtimeNow = (1L << 30) - 1, // [linux-utime]
        UtimeOmit = (1L << 30) - 2,
        AtFdCwd = -100,
        AtFlags = CodeMap.Identity(bitwise: true),
        FuseLibraryNames = ["libfuse3.so.3", "libfuse3.so"],
        FuseInstallHint = LinuxInstallHint,
        FuseNewEntryPoint = "fuse_new_31",
        SupportsAutoUnmount = true,
        FNoCache = 0,
        HasLinuxFileCalls = true,
        VariadicArgumentsOnStack = false,
    };

    /// <summary>macOS on Apple silicon (macFUSE libfuse3).</summary>
    public static NativeAbi MacOSArm64 { get; } = MacOS("osx-arm64", variadicOnStack: true);

    /// <summary>macOS on Intel (macFUSE libfuse3; the Darwin structs are the same as on arm64; SysV variadics).</summary>
    public static NativeAbi MacOSX64 { get; } = MacOS("osx-x64", variadicOnStack: false);

    private const string LinuxInstallHint = "libfuse3.so.3 was not found: install the package 'fuse3' (Debian/Ubuntu: 'fuse3' and 'libfuse3-3'; Fedora: 'fuse3-libs')";

    private static StatVfsLayout LinuxStatVfs(bool canonical) => new() // [glibc-svfs]
    {
        StructSize = 112,
        BlockSize = new(0, 8),
        FragmentSize = new(8, 8),
        Blocks = new(16, 8),
        BlocksFree = new(24, 8),
        BlocksAvailable = new(32, 8),
        Files = new(40, 8),
        FilesFree = new(48, 8),
        FilesAvailable = new(56, 8),
        FileSystemId = new(64, 8),
        Flags = new(72, 8),
        NameMax = new(80, 8),
        IsCanonical = canonical,
    };

    private static NativeAbi MacOS(string name, bool variadicOnStack) => new()
    {
        Name = name,
        IsMacOS = true,
        Stat = new StatLayout // [xnu-stat]
        {
            StructSize = 144,
            Device = new(0, 4),
            Mode = new(4, 2),
            LinkCount = new(6, 2),
            Inode = new(8, 8),
            Uid = new(16, 4),
            Gid = new(20, 4),
            RDevice = new(24, 4),
            AccessTime = 32,
            ModifyTime = 48,
            ChangeTime = 64,
            BirthTime = 80,
            Size = new(96, 8),
            Blocks = new(104, 8),
            BlockSize = new(112, 4),
        },
        StatVfs = new StatVfsLayout // [xnu-svfs]
        {
            StructSize = 64,
            BlockSize = new(0, 8),
            FragmentSize = new(8, 8),
            Blocks = new(16, 4),
            BlocksFree = new(20, 4),
            BlocksAvailable = new(24, 4),
            Files = new(28, 4),
            FilesFree = new(32, 4),
            FilesAvailable = new(36, 4),
            FileSystemId = new(40, 8),
            Flags = new(48, 8),
            NameMax = new(56, 8),
        },
        Errno = CodeMap.Values( // (linux, darwin) [xnu-errno]; 1..34 agree except 11
        [
            (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (9, 9), (10, 10),
            (11, 35),   // EAGAIN
            (12, 12), (13, 13), (14, 14), (15, 15), (16, 16), (17, 17), (18, 18), (19, 19), (20, 20),
            (21, 21), (22, 22), (23, 23), (24, 24), (25, 25), (26, 26), (27, 27), (28, 28), (29, 29), (30, 30),
            (31, 31), (32, 32), (33, 33), (34, 34),
            (35, 11),   // EDEADLK
            (36, 63),   // ENAMETOOLONG
            (37, 77),   // ENOLCK
            (38, 78),   // ENOSYS
            (39, 66),   // ENOTEMPTY
            (40, 62),   // ELOOP
            (61, 93),   // ENODATA (xattr missing) = ENOATTR
            (75, 84),   // EOVERFLOW
            (84, 92),   // EILSEQ
            (95, 45),   // EOPNOTSUPP/ENOTSUP = ENOTSUP
            (95, 102),  // Darwin's separate EOPNOTSUPP (sockets) reads back as the same
            (103, 53),  // ECONNABORTED
            (107, 57),  // ENOTCONN
            (110, 60),  // ETIMEDOUT
            (116, 70),  // ESTALE
            (122, 69),  // EDQUOT
            (125, 89),  // ECANCELED
        ],
            fallback: 5),
        OpenFlags = CodeMap.Bits( // (linux-x64, darwin) [xnu-fcntl]
        [
            (0x40, 0x200),        // O_CREAT
            (0x80, 0x800),        // O_EXCL
            (0x100, 0x20000),     // O_NOCTTY
            (0x200, 0x400),       // O_TRUNC
            (0x400, 0x8),         // O_APPEND
            (0x800, 0x4),         // O_NONBLOCK
            (0x1000, 0x400000),   // O_DSYNC
            (0x2000, 0x40),       // O_ASYNC
            (0x4000, 0),          // O_DIRECT: none (F_NOCACHE)
            (0x8000, 0),          // O_LARGEFILE: none (always 64-bit)
            (0x10000, 0x100000),  // O_DIRECTORY
            (0x20000, 0x100),     // O_NOFOLLOW
            (0x40000, 0),         // O_NOATIME: none
            (0x80000, 0x1000000), // O_CLOEXEC
            (0x100000, 0x80),     // __O_SYNC (O_SYNC = __O_SYNC | O_DSYNC on Linux)
            (0x200000, 0),        // O_PATH: none
            (0x400000, 0),        // __O_TMPFILE: none
        ]),
        Whence = CodeMap.Values([(0, 0), (1, 1), (2, 2), (3, 4), (4, 3)], fallback: -1), // [xnu-seek] SEEK_HOLE 3, SEEK_DATA 4
        UtimeNow = -1, // [xnu-stat] UTIME_NOW
        UtimeOmit = -2, // [xnu-stat] UTIME_OMIT
        AtFdCwd = -2,
        AtFlags = CodeMap.Bits([(0x100, 0x20), (0x200, 0x80), (0x400, 0x40), (0x1000, 0)]),
        FuseLibraryNames = ["/usr/local/lib/libfuse3.4.dylib", "libfuse3.4.dylib", "/usr/local/lib/libfuse-t.dylib", "libfuse-t.dylib"],
        FuseInstallHint = "no libfuse3 was found: install macFUSE 4.10 or newer (https://macfuse.github.io; it provides /usr/local/lib/libfuse3.4.dylib)",
        FuseNewEntryPoint = "_fuse_new_31",
        SupportsAutoUnmount = false,
        FNoCache = 48,
        HasLinuxFileCalls = false,
        VariadicArgumentsOnStack = variadicOnStack,
    };
}
