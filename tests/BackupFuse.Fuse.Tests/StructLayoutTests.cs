using System.Globalization;
using BackupFuse.Fuse.Interop;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// The linux-x64 struct table against the C compiler: a program built with gcc against the installed libfuse3
/// headers prints sizeof/offsetof (and the fuse_file_info bit positions), and every number must match.
/// </summary>
public sealed unsafe class StructLayoutTests(ITestOutputHelper output)
{
    private const string Program = """
        #define FUSE_USE_VERSION 31
        #define _FILE_OFFSET_BITS 64
        #include <fuse.h>
        #include <sys/stat.h>
        #include <sys/statvfs.h>
        #include <dirent.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <string.h>
        #define S(t) printf(#t ".size %zu\n", sizeof(struct t));
        #define O(t, f) printf(#t "." #f " %zu\n", offsetof(struct t, f));
        #define BIT(f) { struct fuse_file_info fi; unsigned w; memset(&fi, 0, sizeof fi); fi.f = 1; memcpy(&w, (char*)&fi + 4, 4); printf("fuse_file_info." #f "_bit %u\n", w); }
        int main(void) {
          S(timespec) O(timespec, tv_sec) O(timespec, tv_nsec)
          S(stat) O(stat, st_dev) O(stat, st_ino) O(stat, st_nlink) O(stat, st_mode) O(stat, st_uid) O(stat, st_gid)
          O(stat, st_rdev) O(stat, st_size) O(stat, st_blksize) O(stat, st_blocks) O(stat, st_atim) O(stat, st_mtim) O(stat, st_ctim)
          S(statvfs) O(statvfs, f_bsize) O(statvfs, f_frsize) O(statvfs, f_blocks) O(statvfs, f_bfree) O(statvfs, f_bavail)
          O(statvfs, f_files) O(statvfs, f_ffree) O(statvfs, f_favail) O(statvfs, f_fsid) O(statvfs, f_flag) O(statvfs, f_namemax)
          S(fuse_file_info) O(fuse_file_info, flags) O(fuse_file_info, fh) O(fuse_file_info, lock_owner) O(fuse_file_info, poll_events)
          BIT(direct_io) BIT(keep_cache) BIT(nonseekable)
          S(fuse_config) O(fuse_config, set_gid) O(fuse_config, gid) O(fuse_config, set_uid) O(fuse_config, uid) O(fuse_config, set_mode)
          O(fuse_config, umask) O(fuse_config, entry_timeout) O(fuse_config, negative_timeout) O(fuse_config, attr_timeout)
          O(fuse_config, intr) O(fuse_config, intr_signal) O(fuse_config, remember) O(fuse_config, hard_remove) O(fuse_config, use_ino)
          O(fuse_config, readdir_ino) O(fuse_config, direct_io) O(fuse_config, kernel_cache) O(fuse_config, auto_cache)
          O(fuse_config, no_rofd_flush) O(fuse_config, ac_attr_timeout_set) O(fuse_config, ac_attr_timeout) O(fuse_config, nullpath_ok)
          O(fuse_config, show_help) O(fuse_config, modules) O(fuse_config, debug)
          S(fuse_conn_info) O(fuse_conn_info, proto_major) O(fuse_conn_info, proto_minor) O(fuse_conn_info, max_write)
          O(fuse_conn_info, max_read) O(fuse_conn_info, max_readahead) O(fuse_conn_info, capable) O(fuse_conn_info, want)
          O(fuse_conn_info, max_background) O(fuse_conn_info, congestion_threshold) O(fuse_conn_info, time_gran)
          S(fuse_args) O(fuse_args, argc) O(fuse_args, argv) O(fuse_args, allocated)
          S(fuse_context) O(fuse_context, fuse) O(fuse_context, uid) O(fuse_context, gid) O(fuse_context, pid)
          O(fuse_context, private_data) O(fuse_context, umask)
          O(dirent, d_ino) O(dirent, d_off) O(dirent, d_reclen) O(dirent, d_type) O(dirent, d_name)
          S(fuse_operations)
          O(fuse_operations, getattr) O(fuse_operations, readlink) O(fuse_operations, mknod) O(fuse_operations, mkdir)
          O(fuse_operations, unlink) O(fuse_operations, rmdir) O(fuse_operations, symlink) O(fuse_operations, rename)
          O(fuse_operations, link) O(fuse_operations, chmod) O(fuse_operations, chown) O(fuse_operations, truncate)
          O(fuse_operations, open) O(fuse_operations, read) O(fuse_operations, write) O(fuse_operations, statfs)
          O(fuse_operations, flush) O(fuse_operations, release) O(fuse_operations, fsync) O(fuse_operations, setxattr)
          O(fuse_operations, getxattr) O(fuse_operations, listxattr) O(fuse_operations, removexattr) O(fuse_operations, opendir)
          O(fuse_operations, readdir) O(fuse_operations, releasedir) O(fuse_operations, fsyncdir) O(fuse_operations, init)
          O(fuse_operations, destroy) O(fuse_operations, access) O(fuse_operations, create) O(fuse_operations, lock)
          O(fuse_operations, utimens) O(fuse_operations, bmap) O(fuse_operations, ioctl) O(fuse_operations, poll)
          O(fuse_operations, write_buf) O(fuse_operations, read_buf) O(fuse_operations, flock) O(fuse_operations, fallocate)
          O(fuse_operations, copy_file_range) O(fuse_operations, lseek)
          return 0;
        }
        """;

    [SkippableFact]
    public void LinuxX64Table_MatchesTheCCompiler()
    {
        string? reason = !OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64
            ? "the struct table under test is linux-x64"
            : !ExternalTool.Exists("gcc") ? "gcc is not installed (package gcc)"
            : !File.Exists("/usr/include/fuse3/fuse.h") ? "the libfuse3 headers are missing (package libfuse3-dev)"
            : null;
        if (FuseTestEnvironment.Skip(output, reason))
        {
            return;
        }

        using var temp = new TempDirectory("bf-layout");
        File.WriteAllText(temp["layout.c"], Program);
        var cc = ExternalTool.Run("gcc", ["-I/usr/include/fuse3", "-o", temp["layout"], temp["layout.c"]]);
        Assert.True(cc.ExitCode == 0, cc.Output);
        var c = ExternalTool.Check(temp["layout"]).StdOut
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture));

        var managed = Managed();
        foreach (var (key, value) in managed)
        {
            Assert.True(c.ContainsKey(key), $"{key} not printed by the C program");
            Assert.True(c[key] == value, $"{key}: C says {c[key]}, the C# table says {value}");
        }

        Assert.Empty(c.Keys.Except(managed.Keys)); // every C number has a C# counterpart
        output.WriteLine($"{managed.Count} sizes/offsets/bits checked");
    }

    private static Dictionary<string, long> Managed()
    {
        var d = new Dictionary<string, long>();
        Timespec ts;
        d["timespec.size"] = sizeof(Timespec);
        d["timespec.tv_sec"] = (byte*)&ts.Seconds - (byte*)&ts;
        d["timespec.tv_nsec"] = (byte*)&ts.Nanoseconds - (byte*)&ts;

        Stat st;
        byte* s = (byte*)&st;
        d["stat.size"] = sizeof(Stat);
        d["stat.st_dev"] = (byte*)&st.Device - s;
        d["stat.st_ino"] = (byte*)&st.Inode - s;
        d["stat.st_nlink"] = (byte*)&st.LinkCount - s;
        d["stat.st_mode"] = (byte*)&st.Mode - s;
        d["stat.st_uid"] = (byte*)&st.Uid - s;
        d["stat.st_gid"] = (byte*)&st.Gid - s;
        d["stat.st_rdev"] = (byte*)&st.RDevice - s;
        d["stat.st_size"] = (byte*)&st.Size - s;
        d["stat.st_blksize"] = (byte*)&st.BlockSize - s;
        d["stat.st_blocks"] = (byte*)&st.Blocks - s;
        d["stat.st_atim"] = (byte*)&st.AccessTime - s;
        d["stat.st_mtim"] = (byte*)&st.ModifyTime - s;
        d["stat.st_ctim"] = (byte*)&st.ChangeTime - s;

        StatVfs v;
        byte* vp = (byte*)&v;
        d["statvfs.size"] = sizeof(StatVfs);
        d["statvfs.f_bsize"] = (byte*)&v.BlockSize - vp;
        d["statvfs.f_frsize"] = (byte*)&v.FragmentSize - vp;
        d["statvfs.f_blocks"] = (byte*)&v.Blocks - vp;
        d["statvfs.f_bfree"] = (byte*)&v.BlocksFree - vp;
        d["statvfs.f_bavail"] = (byte*)&v.BlocksAvailable - vp;
        d["statvfs.f_files"] = (byte*)&v.Files - vp;
        d["statvfs.f_ffree"] = (byte*)&v.FilesFree - vp;
        d["statvfs.f_favail"] = (byte*)&v.FilesAvailable - vp;
        d["statvfs.f_fsid"] = (byte*)&v.FileSystemId - vp;
        d["statvfs.f_flag"] = (byte*)&v.Flags - vp;
        d["statvfs.f_namemax"] = (byte*)&v.NameMax - vp;

        FuseFileInfo fi;
        byte* f = (byte*)&fi;
        d["fuse_file_info.size"] = sizeof(FuseFileInfo);
        d["fuse_file_info.flags"] = (byte*)&fi.Flags - f;
        d["fuse_file_info.fh"] = (byte*)&fi.Fh - f;
        d["fuse_file_info.lock_owner"] = (byte*)&fi.LockOwner - f;
        d["fuse_file_info.poll_events"] = (byte*)&fi.PollEvents - f;
        d["fuse_file_info.direct_io_bit"] = FuseFileInfo.DirectIoBit;
        d["fuse_file_info.keep_cache_bit"] = FuseFileInfo.KeepCacheBit;
        d["fuse_file_info.nonseekable_bit"] = FuseFileInfo.NonSeekableBit;
        Assert.Equal(4, (byte*)&fi.Bits - f);

        FuseConfig cfg;
        byte* g = (byte*)&cfg;
        d["fuse_config.size"] = sizeof(FuseConfig);
        d["fuse_config.set_gid"] = (byte*)&cfg.SetGid - g;
        d["fuse_config.gid"] = (byte*)&cfg.Gid - g;
        d["fuse_config.set_uid"] = (byte*)&cfg.SetUid - g;
        d["fuse_config.uid"] = (byte*)&cfg.Uid - g;
        d["fuse_config.set_mode"] = (byte*)&cfg.SetMode - g;
        d["fuse_config.umask"] = (byte*)&cfg.Umask - g;
        d["fuse_config.entry_timeout"] = (byte*)&cfg.EntryTimeout - g;
        d["fuse_config.negative_timeout"] = (byte*)&cfg.NegativeTimeout - g;
        d["fuse_config.attr_timeout"] = (byte*)&cfg.AttrTimeout - g;
        d["fuse_config.intr"] = (byte*)&cfg.Intr - g;
        d["fuse_config.intr_signal"] = (byte*)&cfg.IntrSignal - g;
        d["fuse_config.remember"] = (byte*)&cfg.Remember - g;
        d["fuse_config.hard_remove"] = (byte*)&cfg.HardRemove - g;
        d["fuse_config.use_ino"] = (byte*)&cfg.UseIno - g;
        d["fuse_config.readdir_ino"] = (byte*)&cfg.ReaddirIno - g;
        d["fuse_config.direct_io"] = (byte*)&cfg.DirectIo - g;
        d["fuse_config.kernel_cache"] = (byte*)&cfg.KernelCache - g;
        d["fuse_config.auto_cache"] = (byte*)&cfg.AutoCache - g;
        d["fuse_config.no_rofd_flush"] = (byte*)&cfg.NoReadOnlyFdFlush - g;
        d["fuse_config.ac_attr_timeout_set"] = (byte*)&cfg.AcAttrTimeoutSet - g;
        d["fuse_config.ac_attr_timeout"] = (byte*)&cfg.AcAttrTimeout - g;
        d["fuse_config.nullpath_ok"] = (byte*)&cfg.NullPathOk - g;
        d["fuse_config.show_help"] = (byte*)&cfg.ShowHelp - g;
        d["fuse_config.modules"] = (byte*)&cfg.Modules - g;
        d["fuse_config.debug"] = (byte*)&cfg.Debug - g;

        FuseConnInfo conn;
        byte* cn = (byte*)&conn;
        d["fuse_conn_info.size"] = sizeof(FuseConnInfo);
        d["fuse_conn_info.proto_major"] = (byte*)&conn.ProtoMajor - cn;
        d["fuse_conn_info.proto_minor"] = (byte*)&conn.ProtoMinor - cn;
        d["fuse_conn_info.max_write"] = (byte*)&conn.MaxWrite - cn;
        d["fuse_conn_info.max_read"] = (byte*)&conn.MaxRead - cn;
        d["fuse_conn_info.max_readahead"] = (byte*)&conn.MaxReadahead - cn;
        d["fuse_conn_info.capable"] = (byte*)&conn.Capable - cn;
        d["fuse_conn_info.want"] = (byte*)&conn.Want - cn;
        d["fuse_conn_info.max_background"] = (byte*)&conn.MaxBackground - cn;
        d["fuse_conn_info.congestion_threshold"] = (byte*)&conn.CongestionThreshold - cn;
        d["fuse_conn_info.time_gran"] = (byte*)&conn.TimeGranularity - cn;

        FuseArgs args;
        d["fuse_args.size"] = sizeof(FuseArgs);
        d["fuse_args.argc"] = (byte*)&args.Argc - (byte*)&args;
        d["fuse_args.argv"] = (byte*)&args.Argv - (byte*)&args;
        d["fuse_args.allocated"] = (byte*)&args.Allocated - (byte*)&args;

        FuseContext ctx;
        byte* cx = (byte*)&ctx;
        d["fuse_context.size"] = sizeof(FuseContext);
        d["fuse_context.fuse"] = (byte*)&ctx.Fuse - cx;
        d["fuse_context.uid"] = (byte*)&ctx.Uid - cx;
        d["fuse_context.gid"] = (byte*)&ctx.Gid - cx;
        d["fuse_context.pid"] = (byte*)&ctx.Pid - cx;
        d["fuse_context.private_data"] = (byte*)&ctx.PrivateData - cx;
        d["fuse_context.umask"] = (byte*)&ctx.Umask - cx;

        Dirent de;
        byte* dp = (byte*)&de;
        d["dirent.d_ino"] = (byte*)&de.Inode - dp;
        d["dirent.d_off"] = (byte*)&de.Offset - dp;
        d["dirent.d_reclen"] = (byte*)&de.RecordLength - dp;
        d["dirent.d_type"] = (byte*)&de.Type - dp;
        d["dirent.d_name"] = (byte*)&de.Name - dp;

        FuseOperations ops;
        byte* o = (byte*)&ops;
        d["fuse_operations.size"] = sizeof(FuseOperations);
        d["fuse_operations.getattr"] = (byte*)&ops.getattr - o;
        d["fuse_operations.readlink"] = (byte*)&ops.readlink - o;
        d["fuse_operations.mknod"] = (byte*)&ops.mknod - o;
        d["fuse_operations.mkdir"] = (byte*)&ops.mkdir - o;
        d["fuse_operations.unlink"] = (byte*)&ops.unlink - o;
        d["fuse_operations.rmdir"] = (byte*)&ops.rmdir - o;
        d["fuse_operations.symlink"] = (byte*)&ops.symlink - o;
        d["fuse_operations.rename"] = (byte*)&ops.rename - o;
        d["fuse_operations.link"] = (byte*)&ops.link - o;
        d["fuse_operations.chmod"] = (byte*)&ops.chmod - o;
        d["fuse_operations.chown"] = (byte*)&ops.chown - o;
        d["fuse_operations.truncate"] = (byte*)&ops.truncate - o;
        d["fuse_operations.open"] = (byte*)&ops.open - o;
        d["fuse_operations.read"] = (byte*)&ops.read - o;
        d["fuse_operations.write"] = (byte*)&ops.write - o;
        d["fuse_operations.statfs"] = (byte*)&ops.statfs - o;
        d["fuse_operations.flush"] = (byte*)&ops.flush - o;
        d["fuse_operations.release"] = (byte*)&ops.release - o;
        d["fuse_operations.fsync"] = (byte*)&ops.fsync - o;
        d["fuse_operations.setxattr"] = (byte*)&ops.setxattr - o;
        d["fuse_operations.getxattr"] = (byte*)&ops.getxattr - o;
        d["fuse_operations.listxattr"] = (byte*)&ops.listxattr - o;
        d["fuse_operations.removexattr"] = (byte*)&ops.removexattr - o;
        d["fuse_operations.opendir"] = (byte*)&ops.opendir - o;
        d["fuse_operations.readdir"] = (byte*)&ops.readdir - o;
        d["fuse_operations.releasedir"] = (byte*)&ops.releasedir - o;
        d["fuse_operations.fsyncdir"] = (byte*)&ops.fsyncdir - o;
        d["fuse_operations.init"] = (byte*)&ops.init - o;
        d["fuse_operations.destroy"] = (byte*)&ops.destroy - o;
        d["fuse_operations.access"] = (byte*)&ops.access - o;
        d["fuse_operations.create"] = (byte*)&ops.create - o;
        d["fuse_operations.lock"] = (byte*)&ops.@lock - o;
        d["fuse_operations.utimens"] = (byte*)&ops.utimens - o;
        d["fuse_operations.bmap"] = (byte*)&ops.bmap - o;
        d["fuse_operations.ioctl"] = (byte*)&ops.ioctl - o;
        d["fuse_operations.poll"] = (byte*)&ops.poll - o;
        d["fuse_operations.write_buf"] = (byte*)&ops.write_buf - o;
        d["fuse_operations.read_buf"] = (byte*)&ops.read_buf - o;
        d["fuse_operations.flock"] = (byte*)&ops.flock - o;
        d["fuse_operations.fallocate"] = (byte*)&ops.fallocate - o;
        d["fuse_operations.copy_file_range"] = (byte*)&ops.copy_file_range - o;
        d["fuse_operations.lseek"] = (byte*)&ops.lseek - o;
        return d;
    }
}
