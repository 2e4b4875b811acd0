using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using BackupFuse.Core.Native;
using BackupFuse.Fuse.Interop;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// The platform tables of NativeAbi against their sources: linux-x64 against the managed structs (it IS them) and
/// the host gcc, linux-arm64 against the aarch64 cross compiler (the real glibc and libfuse headers, compiled, no
/// arm64 machine needed), macOS against the numbers of the headers cited in NativeAbi.Tables.cs (xnu bsd/sys/stat.h,
/// errno.h, fcntl.h, the SDK's sys/statvfs.h), written out here a second time. The conversions are checked by
/// putting distinct values through them and reading the bytes back at the cited offsets.
/// </summary>
public sealed unsafe partial class NativeAbiTests(ITestOutputHelper output)
{
    private const string Aarch64Gcc = "aarch64-linux-gnu-gcc";

    // Flags compiled by both compilers: (name, C expression). O_LARGEFILE is 0 in LP64 userspace and is checked
    // against the kernel header instead (LinuxArm64OpenFlags_TranslateTheKernelsLargefileBit).
    private static readonly string[] FlagNames =
    [
        "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_DSYNC", "O_ASYNC", "O_DIRECT",
        "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_SYNC", "O_PATH", "O_TMPFILE",
    ];

    private const string OracleProgram = """
        #define _GNU_SOURCE
        #define FUSE_USE_VERSION 31
        #define _FILE_OFFSET_BITS 64
        #include <fuse.h>
        #include <sys/stat.h>
        #include <sys/statvfs.h>
        #include <fcntl.h>
        #include <dirent.h>
        #include <errno.h>
        #include <stddef.h>
        #define V(n, e) long v_##n = (long)(e);
        #define F(t, f) V(t##__##f, offsetof(struct t, f)) V(t##__##f##__size, sizeof(((struct t*)0)->f))
        V(stat__size, sizeof(struct stat)) F(stat, st_dev) F(stat, st_ino) F(stat, st_mode) F(stat, st_nlink)
        F(stat, st_uid) F(stat, st_gid) F(stat, st_rdev) F(stat, st_size) F(stat, st_blksize) F(stat, st_blocks)
        F(stat, st_atim) F(stat, st_mtim) F(stat, st_ctim)
        V(statvfs__size, sizeof(struct statvfs)) F(statvfs, f_bsize) F(statvfs, f_frsize) F(statvfs, f_blocks)
        F(statvfs, f_bfree) F(statvfs, f_bavail) F(statvfs, f_files) F(statvfs, f_ffree) F(statvfs, f_favail)
        F(statvfs, f_fsid) F(statvfs, f_flag) F(statvfs, f_namemax)
        F(dirent, d_ino) F(dirent, d_off) F(dirent, d_reclen) F(dirent, d_type) F(dirent, d_name)
        V(fuse_file_info__size, sizeof(struct fuse_file_info)) F(fuse_file_info, flags) F(fuse_file_info, fh)
        F(fuse_file_info, lock_owner) F(fuse_config, entry_timeout) F(fuse_config, attr_timeout)
        F(fuse_config, nullpath_ok) F(fuse_config, debug) F(fuse_conn_info, max_read) F(fuse_conn_info, want)
        F(fuse_context, private_data) F(fuse_args, argv) V(fuse_operations__size, sizeof(struct fuse_operations))
        F(fuse_operations, getattr) F(fuse_operations, statfs) F(fuse_operations, readdir) F(fuse_operations, init)
        F(fuse_operations, utimens) F(fuse_operations, lseek)
        V(O_CREAT, O_CREAT) V(O_EXCL, O_EXCL) V(O_NOCTTY, O_NOCTTY) V(O_TRUNC, O_TRUNC) V(O_APPEND, O_APPEND)
        V(O_NONBLOCK, O_NONBLOCK) V(O_DSYNC, O_DSYNC) V(O_ASYNC, O_ASYNC) V(O_DIRECT, O_DIRECT)
        V(O_DIRECTORY, O_DIRECTORY) V(O_NOFOLLOW, O_NOFOLLOW) V(O_NOATIME, O_NOATIME) V(O_CLOEXEC, O_CLOEXEC)
        V(O_SYNC, O_SYNC) V(O_PATH, O_PATH) V(O_TMPFILE, O_TMPFILE)
        V(AT_FDCWD, AT_FDCWD) V(AT_SYMLINK_NOFOLLOW, AT_SYMLINK_NOFOLLOW) V(AT_REMOVEDIR, AT_REMOVEDIR)
        V(EPERM, EPERM) V(ENOENT, ENOENT) V(EINTR, EINTR) V(EIO, EIO) V(ENXIO, ENXIO) V(EBADF, EBADF) V(ENOMEM, ENOMEM)
        V(EACCES, EACCES) V(EEXIST, EEXIST) V(EXDEV, EXDEV) V(ENOTDIR, ENOTDIR) V(EISDIR, EISDIR) V(EINVAL, EINVAL)
        V(EFBIG, EFBIG) V(ENOSPC, ENOSPC) V(EROFS, EROFS) V(ERANGE, ERANGE) V(ENAMETOOLONG, ENAMETOOLONG)
        V(ENOSYS, ENOSYS) V(ENOTEMPTY, ENOTEMPTY) V(ELOOP, ELOOP) V(EOPNOTSUPP, EOPNOTSUPP)
        V(ECONNABORTED, ECONNABORTED)
        """;

    [Fact]
    public void LinuxX64Table_IsTheManagedStructs()
    {
        var t = NativeAbi.LinuxX64.Stat;
        Assert.True(t.IsCanonical);
        Assert.Equal(sizeof(Stat), t.StructSize);
        Assert.Equal(Offset<Stat>(nameof(Stat.Device)), t.Device);
        Assert.Equal(Offset<Stat>(nameof(Stat.Inode)), t.Inode);
        Assert.Equal(Offset<Stat>(nameof(Stat.LinkCount)), t.LinkCount);
        Assert.Equal(Offset<Stat>(nameof(Stat.Mode)), t.Mode);
        Assert.Equal(Offset<Stat>(nameof(Stat.Uid)), t.Uid);
        Assert.Equal(Offset<Stat>(nameof(Stat.Gid)), t.Gid);
        Assert.Equal(Offset<Stat>(nameof(Stat.RDevice)), t.RDevice);
        Assert.Equal(Offset<Stat>(nameof(Stat.Size)), t.Size);
        Assert.Equal(Offset<Stat>(nameof(Stat.BlockSize)), t.BlockSize);
        Assert.Equal(Offset<Stat>(nameof(Stat.Blocks)), t.Blocks);
        Assert.Equal((int)Marshal.OffsetOf<Stat>(nameof(Stat.AccessTime)), t.AccessTime);
        Assert.Equal((int)Marshal.OffsetOf<Stat>(nameof(Stat.ModifyTime)), t.ModifyTime);
        Assert.Equal((int)Marshal.OffsetOf<Stat>(nameof(Stat.ChangeTime)), t.ChangeTime);

        var v = NativeAbi.LinuxX64.StatVfs;
        Assert.True(v.IsCanonical);
        Assert.Equal(sizeof(StatVfs), v.StructSize);
        Assert.Equal(Offset<StatVfs>(nameof(StatVfs.BlockSize)), v.BlockSize);
        Assert.Equal(Offset<StatVfs>(nameof(StatVfs.Blocks)), v.Blocks);
        Assert.Equal(Offset<StatVfs>(nameof(StatVfs.FilesAvailable)), v.FilesAvailable);
        Assert.Equal(Offset<StatVfs>(nameof(StatVfs.FileSystemId)), v.FileSystemId);
        Assert.Equal(Offset<StatVfs>(nameof(StatVfs.NameMax)), v.NameMax);

        Assert.True(NativeAbi.LinuxX64.Errno.IsIdentity);
        Assert.True(NativeAbi.LinuxX64.OpenFlags.IsIdentity);
        Assert.Equal(LibC.AT_FDCWD, NativeAbi.LinuxX64.AtFdCwd);
    }

    [SkippableFact]
    public void LinuxX64Table_MatchesTheHostCompiler()
    {
        var x64 = Compile("gcc", "x86_64");
        var t = NativeAbi.LinuxX64.Stat;
        AssertStat(x64, t);
        AssertStatVfs(x64, NativeAbi.LinuxX64.StatVfs);
        foreach (var name in FlagNames)
        {
            Assert.Equal(x64[name], CanonicalFlag(name));
        }
    }

    [SkippableFact]
    public void LinuxArm64Table_MatchesTheAarch64Compiler()
    {
        var arm = Compile(Aarch64Gcc, "aarch64");
        var abi = NativeAbi.LinuxArm64;
        Assert.Equal(128, abi.Stat.StructSize);
        AssertStat(arm, abi.Stat);
        AssertStatVfs(arm, abi.StatVfs);

        // The managed structs that are the same on every LP64 Linux (libfuse's, dirent) must match arm64 as well.
        Assert.Equal(Marshal.OffsetOf<Dirent>(nameof(Dirent.Name)), (nint)arm["dirent__d_name"]);
        Assert.Equal(Marshal.OffsetOf<Dirent>(nameof(Dirent.Type)), (nint)arm["dirent__d_type"]);
        Assert.Equal(Marshal.OffsetOf<FuseFileInfo>(nameof(FuseFileInfo.Fh)), (nint)arm["fuse_file_info__fh"]);
        Assert.Equal(Marshal.OffsetOf<FuseConfig>(nameof(FuseConfig.NullPathOk)), (nint)arm["fuse_config__nullpath_ok"]);
        Assert.Equal(Marshal.OffsetOf<FuseConnInfo>(nameof(FuseConnInfo.MaxRead)), (nint)arm["fuse_conn_info__max_read"]);
        Assert.Equal(Marshal.OffsetOf<FuseContext>(nameof(FuseContext.PrivateData)), (nint)arm["fuse_context__private_data"]);
        Assert.Equal(sizeof(FuseOperations), arm["fuse_operations__size"]);
        Assert.Equal(Marshal.OffsetOf<FuseOperations>("lseek"), (nint)arm["fuse_operations__lseek"]);

        // errno: asm-generic numbers = x86_64's (identity table).
        Assert.True(abi.Errno.IsIdentity);
        foreach (var (name, value) in ErrnoConstants())
        {
            Assert.True(arm[name] == value, $"{name}: arm64 {arm[name]}, Errno.{name} {value}");
        }

        Assert.Equal(arm["AT_FDCWD"], abi.AtFdCwd);
        Assert.Equal(arm["AT_SYMLINK_NOFOLLOW"], abi.AtFlags.ToNative(LibC.AT_SYMLINK_NOFOLLOW));
    }

    [SkippableFact]
    public void LinuxArm64OpenFlags_TranslateEveryBitBothCompilersDefine()
    {
        var x64 = Compile("gcc", "x86_64");
        var arm = Compile(Aarch64Gcc, "aarch64");
        var map = NativeAbi.LinuxArm64.OpenFlags;
        foreach (var name in FlagNames)
        {
            int canonical = (int)x64[name];
            int native = (int)arm[name];
            Assert.True(map.ToNative(canonical) == native, $"{name}: x86_64 0x{canonical:x} should become arm64 0x{native:x}, got 0x{map.ToNative(canonical):x}");
            Assert.True(map.ToCanonical(native) == canonical, $"{name}: arm64 0x{native:x} should read back as 0x{canonical:x}, got 0x{map.ToCanonical(native):x}");
        }

        // The mistake this table exists for: x86_64's O_DIRECTORY bit is arm64's O_DIRECT.
        Assert.Equal((int)arm["O_DIRECT"], (int)x64["O_DIRECTORY"]);
        Assert.Equal((int)arm["O_DIRECTORY"] | 2, map.ToNative(LibC.O_DIRECTORY | LibC.O_RDWR));
    }

    [Fact]
    public void LinuxArm64OpenFlags_TranslateTheKernelsLargefileBit()
    {
        // torvalds/linux arch/arm64/include/uapi/asm/fcntl.h: O_LARGEFILE 0400000; x86_64 (asm-generic) 0100000.
        Assert.Equal(0x20000, NativeAbi.LinuxArm64.OpenFlags.ToNative(0x8000));
        Assert.Equal(0x8000, NativeAbi.LinuxArm64.OpenFlags.ToCanonical(0x20000 | 0x2) & ~0x3);
    }

    [Theory]
    [InlineData("osx-arm64")]
    [InlineData("osx-x64")]
    public void MacOSTables_MatchTheCitedXnuHeaders(string rid)
    {
        var abi = rid == "osx-arm64" ? NativeAbi.MacOSArm64 : NativeAbi.MacOSX64;
        Assert.True(abi.IsMacOS);

        // xnu bsd/sys/stat.h __DARWIN_STRUCT_STAT64, types from bsd/sys/_types.h.
        var s = abi.Stat;
        Assert.Equal(144, s.StructSize);
        Assert.Equal(new NativeField(0, 4), s.Device);      // dev_t = __int32_t
        Assert.Equal(new NativeField(4, 2), s.Mode);        // mode_t = __uint16_t
        Assert.Equal(new NativeField(6, 2), s.LinkCount);   // nlink_t = __uint16_t
        Assert.Equal(new NativeField(8, 8), s.Inode);       // __darwin_ino64_t
        Assert.Equal(new NativeField(16, 4), s.Uid);
        Assert.Equal(new NativeField(20, 4), s.Gid);
        Assert.Equal(new NativeField(24, 4), s.RDevice);    // dev_t, then 4 bytes padding
        Assert.Equal(32, s.AccessTime);
        Assert.Equal(48, s.ModifyTime);
        Assert.Equal(64, s.ChangeTime);
        Assert.Equal(80, s.BirthTime);
        Assert.Equal(new NativeField(96, 8), s.Size);
        Assert.Equal(new NativeField(104, 8), s.Blocks);
        Assert.Equal(new NativeField(112, 4), s.BlockSize); // blksize_t = __int32_t; st_flags 116, st_gen 120

        // sys/statvfs.h with fsblkcnt_t = fsfilcnt_t = unsigned int.
        var v = abi.StatVfs;
        Assert.Equal(64, v.StructSize);
        Assert.Equal(new NativeField(0, 8), v.BlockSize);
        Assert.Equal(new NativeField(8, 8), v.FragmentSize);
        Assert.Equal(new NativeField(16, 4), v.Blocks);
        Assert.Equal(new NativeField(20, 4), v.BlocksFree);
        Assert.Equal(new NativeField(24, 4), v.BlocksAvailable);
        Assert.Equal(new NativeField(28, 4), v.Files);
        Assert.Equal(new NativeField(32, 4), v.FilesFree);
        Assert.Equal(new NativeField(36, 4), v.FilesAvailable);
        Assert.Equal(new NativeField(40, 8), v.FileSystemId);
        Assert.Equal(new NativeField(48, 8), v.Flags);
        Assert.Equal(new NativeField(56, 8), v.NameMax);

        // bsd/sys/fcntl.h.
        Assert.Equal(-2, abi.AtFdCwd);
        Assert.Equal(0x20, abi.AtFlags.ToNative(LibC.AT_SYMLINK_NOFOLLOW));
        Assert.Equal(0x80, abi.AtFlags.ToNative(LibC.AT_REMOVEDIR));
        Assert.Equal(48, abi.FNoCache);
        Assert.Equal(0, abi.ODirect);
        Assert.False(abi.SupportsAutoUnmount);
        Assert.False(abi.HasLinuxFileCalls);
        Assert.Equal(rid == "osx-arm64", abi.VariadicArgumentsOnStack);

        // xnu bsd/sys/_types/_seek_set.h: SEEK_HOLE 3, SEEK_DATA 4, the other way round from Linux.
        Assert.Equal(4, abi.Whence.ToNative(3 /* Linux SEEK_DATA */));
        Assert.Equal(3, abi.Whence.ToNative(4 /* Linux SEEK_HOLE */));
        Assert.Equal(2, abi.Whence.ToNative(2));
        Assert.Equal(3, abi.Whence.ToCanonical(4));
        Assert.True(NativeAbi.LinuxArm64.Whence.IsIdentity);

        // bsd/sys/stat.h: UTIME_NOW -1, UTIME_OMIT -2 (Linux: (1 << 30) - 1 and - 2).
        Assert.Equal(0x3FFFFFFF, abi.ToCanonicalNanoseconds(-1));
        Assert.Equal(0x3FFFFFFE, abi.ToCanonicalNanoseconds(-2));
        Assert.Equal(123_456_789, abi.ToCanonicalNanoseconds(123_456_789));
        Assert.Equal(0x3FFFFFFF, NativeAbi.LinuxArm64.ToCanonicalNanoseconds(0x3FFFFFFF));
    }

    [Theory]
    [InlineData(LibC.O_CREAT, 0x200)]
    [InlineData(LibC.O_EXCL, 0x800)]
    [InlineData(LibC.O_TRUNC, 0x400)]
    [InlineData(LibC.O_APPEND, 0x8)]
    [InlineData(LibC.O_NONBLOCK, 0x4)]
    [InlineData(LibC.O_DIRECTORY, 0x100000)]
    [InlineData(LibC.O_NOFOLLOW, 0x100)]
    [InlineData(LibC.O_CLOEXEC, 0x1000000)]
    [InlineData(0x101000 /* Linux O_SYNC */, 0x80 | 0x400000 /* O_SYNC | O_DSYNC */)]
    [InlineData(0x100 /* O_NOCTTY */, 0x20000)]
    [InlineData(LibC.O_DIRECT, 0)]
    [InlineData(LibC.O_PATH, 0)]
    public void MacOSOpenFlags_MatchXnuFcntlH(int linux, int darwin)
    {
        var map = NativeAbi.MacOSArm64.OpenFlags;
        Assert.Equal(darwin | LibC.O_RDWR, map.ToNative(linux | LibC.O_RDWR));
        if (darwin != 0)
        {
            Assert.Equal(linux | LibC.O_WRONLY, map.ToCanonical(darwin | LibC.O_WRONLY));
        }
    }

    [Theory]
    [InlineData(Errno.EPERM, 1)]
    [InlineData(Errno.ENOENT, 2)]
    [InlineData(Errno.EIO, 5)]
    [InlineData(Errno.EACCES, 13)]
    [InlineData(Errno.EEXIST, 17)]
    [InlineData(Errno.EINVAL, 22)]
    [InlineData(Errno.EROFS, 30)]
    [InlineData(Errno.ERANGE, 34)]
    [InlineData(Errno.ENAMETOOLONG, 63)]
    [InlineData(Errno.ENOSYS, 78)]
    [InlineData(Errno.ENOTEMPTY, 66)]
    [InlineData(Errno.ELOOP, 62)]
    [InlineData(Errno.EOPNOTSUPP, 45)]
    [InlineData(11 /* EAGAIN */, 35)]
    [InlineData(61 /* ENODATA */, 93 /* ENOATTR */)]
    [InlineData(Errno.ECONNABORTED, 53)]
    [InlineData(107 /* ENOTCONN */, 57)]
    public void MacOSErrno_MatchesXnuErrnoH(int linux, int darwin)
    {
        var map = NativeAbi.MacOSX64.Errno;
        Assert.Equal(darwin, map.ToNative(linux));
        Assert.Equal(linux, map.ToCanonical(darwin));
    }

    [Fact]
    public void MacOSErrno_NeverPassesANumberThatMeansSomethingElse()
    {
        var map = NativeAbi.MacOSArm64.Errno;
        Assert.Equal(95, map.ToCanonical(102));  // Darwin's socket EOPNOTSUPP
        Assert.Equal(5, map.ToNative(200));      // no Darwin twin: EIO, not 200
        Assert.Equal(5, map.ToCanonical(106));   // EQFULL has no Linux twin
        Assert.Equal(11, map.ToNative(35));      // Linux EDEADLK 35 is Darwin 11, not Darwin EAGAIN 35
        foreach (var (name, value) in ErrnoConstants())
        {
            int native = map.ToNative(value);
            Assert.True(map.ToCanonical(native) == value, $"{name} ({value}) → {native} → {map.ToCanonical(native)}");
        }
    }

    [Fact]
    public void MacOSStatCopy_PutsEachValueWhereDarwinReadsIt()
    {
        var st = new Stat
        {
            Device = 0x0102_0304,
            Inode = 0x1122_3344_5566_7788,
            LinkCount = 70_000, // more than Darwin's 16-bit nlink_t holds
            Mode = 0x81A4,
            Uid = 501,
            Gid = 20,
            RDevice = 0x0A0B,
            Size = 0x1_0000_0001,
            BlockSize = 4096,
            Blocks = 8,
            AccessTime = new Timespec { Seconds = 1_700_000_001, Nanoseconds = 11 },
            ModifyTime = new Timespec { Seconds = 1_700_000_002, Nanoseconds = 22 },
            ChangeTime = new Timespec { Seconds = 1_700_000_003, Nanoseconds = 33 },
        };
        var native = new byte[144];
        native.AsSpan().Fill(0xEE); // Copy must clear what it does not set
        fixed (byte* n = native)
        {
            StatLayout.Copy(NativeAbi.LinuxX64.Stat, (byte*)&st, NativeAbi.MacOSArm64.Stat, n);
        }

        var b = native.AsSpan();
        Assert.Equal(0x0102_0304, BinaryPrimitives.ReadInt32LittleEndian(b[0..]));
        Assert.Equal(0x81A4, BinaryPrimitives.ReadUInt16LittleEndian(b[4..]));
        Assert.Equal(ushort.MaxValue, BinaryPrimitives.ReadUInt16LittleEndian(b[6..]));
        Assert.Equal(0x1122_3344_5566_7788UL, BinaryPrimitives.ReadUInt64LittleEndian(b[8..]));
        Assert.Equal(501u, BinaryPrimitives.ReadUInt32LittleEndian(b[16..]));
        Assert.Equal(20u, BinaryPrimitives.ReadUInt32LittleEndian(b[20..]));
        Assert.Equal(0x0A0B, BinaryPrimitives.ReadInt32LittleEndian(b[24..]));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(b[28..]));
        Assert.Equal(1_700_000_001L, BinaryPrimitives.ReadInt64LittleEndian(b[32..]));
        Assert.Equal(11L, BinaryPrimitives.ReadInt64LittleEndian(b[40..]));
        Assert.Equal(1_700_000_002L, BinaryPrimitives.ReadInt64LittleEndian(b[48..]));
        Assert.Equal(1_700_000_003L, BinaryPrimitives.ReadInt64LittleEndian(b[64..]));
        Assert.Equal(33L, BinaryPrimitives.ReadInt64LittleEndian(b[72..]));
        Assert.Equal(1_700_000_002L, BinaryPrimitives.ReadInt64LittleEndian(b[80..])); // birth = modify
        Assert.Equal(0x1_0000_0001L, BinaryPrimitives.ReadInt64LittleEndian(b[96..]));
        Assert.Equal(8L, BinaryPrimitives.ReadInt64LittleEndian(b[104..]));
        Assert.Equal(4096, BinaryPrimitives.ReadInt32LittleEndian(b[112..]));
        Assert.True(b[116..].ToArray().All(x => x == 0), "st_flags, st_gen and the spares must be 0");

        // And back: what a Darwin fstat returns reads as the same canonical values (nlink clamped).
        Stat back = default;
        fixed (byte* n = native)
        {
            StatLayout.Copy(NativeAbi.MacOSArm64.Stat, n, NativeAbi.LinuxX64.Stat, (byte*)&back);
        }

        Assert.Equal(st.Inode, back.Inode);
        Assert.Equal(st.Size, back.Size);
        Assert.Equal(st.Mode, back.Mode);
        Assert.Equal(65535UL, back.LinkCount);
        Assert.Equal(st.ChangeTime.Nanoseconds, back.ChangeTime.Nanoseconds);
    }

    [Fact]
    public void LinuxArm64StatCopy_MovesModeAndLinkCountToTheGenericPlaces()
    {
        var st = new Stat { Inode = 42, Mode = 0x41ED, LinkCount = 3, Uid = 1000, Gid = 1001, Size = 12345, BlockSize = 4096, Blocks = 32 };
        var native = new byte[128];
        fixed (byte* n = native)
        {
            StatLayout.Copy(NativeAbi.LinuxX64.Stat, (byte*)&st, NativeAbi.LinuxArm64.Stat, n);
        }

        Assert.Equal(0x41EDu, BinaryPrimitives.ReadUInt32LittleEndian(native.AsSpan(16)));
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(native.AsSpan(20)));
        Assert.Equal(1000u, BinaryPrimitives.ReadUInt32LittleEndian(native.AsSpan(24)));
        Assert.Equal(12345L, BinaryPrimitives.ReadInt64LittleEndian(native.AsSpan(48)));
        Assert.Equal(4096, BinaryPrimitives.ReadInt32LittleEndian(native.AsSpan(56)));
        Assert.Equal(32L, BinaryPrimitives.ReadInt64LittleEndian(native.AsSpan(64)));
    }

    [Fact]
    public void MacOSStatVfsCopy_ClampsCountersDarwinCannotHold()
    {
        var vfs = new StatVfs { BlockSize = 1 << 20, FragmentSize = 4096, Blocks = 5_000_000_000, BlocksFree = 7, Files = 12, FileSystemId = 0xABCD, Flags = 1, NameMax = 255 };
        var native = new byte[64];
        fixed (byte* n = native)
        {
            StatVfsLayout.Copy(NativeAbi.LinuxX64.StatVfs, (byte*)&vfs, NativeAbi.MacOSArm64.StatVfs, n);
        }

        var b = native.AsSpan();
        Assert.Equal(1UL << 20, BinaryPrimitives.ReadUInt64LittleEndian(b[0..]));
        Assert.Equal(4096UL, BinaryPrimitives.ReadUInt64LittleEndian(b[8..]));
        Assert.Equal(uint.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(b[16..]));
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(b[20..]));
        Assert.Equal(12u, BinaryPrimitives.ReadUInt32LittleEndian(b[28..]));
        Assert.Equal(0xABCDUL, BinaryPrimitives.ReadUInt64LittleEndian(b[40..]));
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(b[48..]));
        Assert.Equal(255UL, BinaryPrimitives.ReadUInt64LittleEndian(b[56..]));
    }

    [Fact]
    public void FuseLibraryLookup_NamesEachPlatformsFile()
    {
        Assert.Equal("libfuse3.so.3", NativeAbi.LinuxX64.FuseLibraryNames[0]);
        Assert.Equal("libfuse3.so.3", NativeAbi.LinuxArm64.FuseLibraryNames[0]);
        Assert.Equal("fuse_new_31", NativeAbi.LinuxX64.FuseNewEntryPoint);
        foreach (var mac in new[] { NativeAbi.MacOSArm64, NativeAbi.MacOSX64 })
        {
            Assert.Equal("/usr/local/lib/libfuse3.4.dylib", mac.FuseLibraryNames[0]);   // macFUSE >= 4.10
            Assert.Contains("/usr/local/lib/libfuse-t.dylib", mac.FuseLibraryNames);    // FUSE-T
            Assert.Equal("_fuse_new_31", mac.FuseNewEntryPoint);
            Assert.Equal(["/usr/lib/libSystem.B.dylib", "libSystem.B.dylib"], NativeLibraries.LibCNames(mac));
        }

        Assert.Equal(["libc.so.6", "libc"], NativeLibraries.LibCNames(NativeAbi.LinuxArm64));
    }

    [SkippableFact]
    public void FuseLibraryLookup_TakesTheFirstFileWithTheEntryPointAndNamesAFuseTThatHasNone()
    {
        string? reason = NativeLibrary.TryLoad("libfuse3.so.3", out var probe) ? null : "libfuse3.so.3 is not installed (package libfuse3-3)";
        if (FuseTestEnvironment.Skip(output, reason))
        {
            return;
        }

        NativeLibrary.Free(probe);
        using var temp = new TempDirectory("bf-abi");

        // A FUSE-T stand-in: a real shared library under FUSE-T's name that lacks _fuse_new_31 (like FUSE-T's libfuse 2).
        string fuseT = temp["libfuse-t.dylib"];
        File.Copy(FindSystemLibrary("libz.so.1"), fuseT);
        var onlyFuseT = NativeAbi.MacOSArm64 with { FuseLibraryNames = ["/nonexistent/libfuse3.4.dylib", fuseT] };
        Assert.False(NativeLibraries.TryLoadFuse(onlyFuseT, out _, out var problem));
        Assert.Contains("libfuse-t.dylib (FUSE-T) offers the libfuse 2 API only", problem);
        Assert.Contains("macFUSE 4.10", problem);

        var nothing = NativeAbi.MacOSArm64 with { FuseLibraryNames = ["/nonexistent/libfuse3.4.dylib"] };
        Assert.False(NativeLibraries.TryLoadFuse(nothing, out _, out problem));
        Assert.Equal(NativeAbi.MacOSArm64.FuseInstallHint, problem);

        // The real libfuse3 exports fuse_new_31 (Linux) and, being >= 3.17 or not, is taken after a file that lacks it.
        var linux = NativeAbi.LinuxX64 with { FuseLibraryNames = [fuseT, "libfuse3.so.3"] };
        Assert.True(NativeLibraries.TryLoadFuse(linux, out var handle, out problem), problem);
        Assert.NotEqual(0, handle);
    }

    [Fact]
    public void MountArguments_FollowThePlatform()
    {
        var options = new FuseMountOptions { MountPoint = "/mnt/x", AutoUnmount = true };
        Assert.Contains("auto_unmount", string.Join(' ', options.BuildArguments(NativeAbi.LinuxX64)));
        Assert.Contains("auto_unmount", string.Join(' ', options.BuildArguments(NativeAbi.LinuxArm64)));
        string mac = string.Join(' ', options.BuildArguments(NativeAbi.MacOSArm64));
        Assert.DoesNotContain("auto_unmount", mac);
        Assert.DoesNotContain("max_read", mac);  // a Linux kernel option; init leaves conn->max_read alone there too
        Assert.DoesNotContain("subtype", mac);
        Assert.Contains("noappledouble", mac);   // no ._* files for the xattrs we do not serve
        Assert.Contains("default_permissions", mac);
        Assert.Equal(options.BuildArguments(), options.BuildArguments(NativeAbi.Current));
    }

    [Fact]
    public void LibfuseVersion_HasTheUpstreamLayoutWithDarwinExtensionsOff()
    {
        // libfuse include/fuse_common.h: struct libfuse_version { uint32_t major, minor, hotfix, padding; }.
        Assert.Equal(16, sizeof(LibfuseVersion));
        Assert.Equal(12, (int)Marshal.OffsetOf<LibfuseVersion>(nameof(LibfuseVersion.Padding)));
        var v = LibfuseVersion.WithoutDarwinExtensions;
        Assert.Equal((3u, 17u), (v.Major, v.Minor));
        Assert.Equal(0u, v.Padding & LibfuseVersion.DarwinExtensionsEnabledBit);
    }

    [Fact]
    public void Current_IsChosenByTheRunningPlatform()
    {
        var expected = NativeAbi.For(OperatingSystem.IsLinux() ? OSPlatform.Linux : OSPlatform.OSX, RuntimeInformation.ProcessArchitecture);
        Assert.Same(expected, NativeAbi.Current);
        Assert.Same(NativeAbi.MacOSArm64, NativeAbi.For(OSPlatform.OSX, Architecture.Arm64));
        Assert.Same(NativeAbi.LinuxArm64, NativeAbi.For(OSPlatform.Linux, Architecture.Arm64));
        Assert.Null(NativeAbi.For(OSPlatform.Windows, Architecture.X64));
    }

    private static NativeField Offset<T>(string field) => new((int)Marshal.OffsetOf<T>(field), Marshal.SizeOf(typeof(T).GetField(field)!.FieldType));

    private static long CanonicalFlag(string name) => name switch
    {
        "O_CREAT" => LibC.O_CREAT,
        "O_EXCL" => LibC.O_EXCL,
        "O_TRUNC" => LibC.O_TRUNC,
        "O_APPEND" => LibC.O_APPEND,
        "O_NONBLOCK" => LibC.O_NONBLOCK,
        "O_DIRECT" => LibC.O_DIRECT,
        "O_DIRECTORY" => LibC.O_DIRECTORY,
        "O_NOFOLLOW" => LibC.O_NOFOLLOW,
        "O_CLOEXEC" => LibC.O_CLOEXEC,
        "O_PATH" => LibC.O_PATH,
        "O_NOCTTY" => 0x100,
        "O_DSYNC" => 0x1000,
        "O_ASYNC" => 0x2000,
        "O_NOATIME" => 0x40000,
        "O_SYNC" => 0x101000,
        "O_TMPFILE" => 0x410000,
        _ => throw new ArgumentException(name),
    };

    private static IEnumerable<(string Name, int Value)> ErrnoConstants() =>
        typeof(Errno).GetFields().Where(f => f.IsLiteral && f.FieldType == typeof(int)).Select(f => (f.Name, (int)f.GetRawConstantValue()!));

    private static void AssertStat(Dictionary<string, long> c, StatLayout t)
    {
        Assert.Equal(c["stat__size"], t.StructSize);
        AssertField(c, "stat__st_dev", t.Device);
        AssertField(c, "stat__st_ino", t.Inode);
        AssertField(c, "stat__st_mode", t.Mode);
        AssertField(c, "stat__st_nlink", t.LinkCount);
        AssertField(c, "stat__st_uid", t.Uid);
        AssertField(c, "stat__st_gid", t.Gid);
        AssertField(c, "stat__st_rdev", t.RDevice);
        AssertField(c, "stat__st_size", t.Size);
        AssertField(c, "stat__st_blksize", t.BlockSize);
        AssertField(c, "stat__st_blocks", t.Blocks);
        Assert.Equal(c["stat__st_atim"], t.AccessTime);
        Assert.Equal(c["stat__st_mtim"], t.ModifyTime);
        Assert.Equal(c["stat__st_ctim"], t.ChangeTime);
        Assert.Equal(16, c["stat__st_atim__size"]);
    }

    private static void AssertStatVfs(Dictionary<string, long> c, StatVfsLayout t)
    {
        Assert.Equal(c["statvfs__size"], t.StructSize);
        AssertField(c, "statvfs__f_bsize", t.BlockSize);
        AssertField(c, "statvfs__f_frsize", t.FragmentSize);
        AssertField(c, "statvfs__f_blocks", t.Blocks);
        AssertField(c, "statvfs__f_bfree", t.BlocksFree);
        AssertField(c, "statvfs__f_bavail", t.BlocksAvailable);
        AssertField(c, "statvfs__f_files", t.Files);
        AssertField(c, "statvfs__f_ffree", t.FilesFree);
        AssertField(c, "statvfs__f_favail", t.FilesAvailable);
        AssertField(c, "statvfs__f_fsid", t.FileSystemId);
        AssertField(c, "statvfs__f_flag", t.Flags);
        AssertField(c, "statvfs__f_namemax", t.NameMax);
    }

    private static void AssertField(Dictionary<string, long> c, string name, NativeField field) =>
        Assert.True(new NativeField((int)c[name], (int)c[name + "__size"]) == field, $"{name}: compiler says offset {c[name]} size {c[name + "__size"]}, table says {field}");

    /// <summary>Compiles the oracle program to assembly with <paramref name="compiler"/> and reads back every v_* constant.</summary>
    private Dictionary<string, long> Compile(string compiler, string what)
    {
        string? reason = !ExternalTool.Exists(compiler) ? $"{compiler} is not installed (the {what} oracle; scripts/install-deps.sh --test)"
            : !File.Exists("/usr/include/fuse3/fuse.h") ? "the libfuse3 headers are missing (package libfuse3-dev)"
            : null;
        Prerequisite.SkipIf(reason);
        using var temp = new TempDirectory("bf-abi");
        File.WriteAllText(temp["oracle.c"], OracleProgram);
        var cc = ExternalTool.Run(compiler, ["-I/usr/include/fuse3", "-S", "-o", temp["oracle.s"], temp["oracle.c"]]);
        Assert.True(cc.ExitCode == 0, cc.Output);
        var values = new Dictionary<string, long>();
        foreach (Match m in ConstantPattern().Matches(File.ReadAllText(temp["oracle.s"])))
        {
            // A constant 0 lands in .bss as ".zero 8".
            values[m.Groups[1].Value] = m.Groups[2].Value == "zero" ? 0 : long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
        }

        output.WriteLine($"{compiler}: {values.Count} constants");
        Assert.True(values.Count > 100, $"only {values.Count} constants parsed from {compiler}'s output");
        return values;
    }

    private static string FindSystemLibrary(string name) =>
        new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64" }
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists) ?? throw new SkipException($"{name} not found");

    [GeneratedRegex(@"^v_(\w+):\s*\n\s*\.(xword|quad|zero)\s+(-?\d+)", RegexOptions.Multiline)]
    private static partial Regex ConstantPattern();
}
