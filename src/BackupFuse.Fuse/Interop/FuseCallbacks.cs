using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using BackupFuse.Core.Native;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - One [UnmanagedCallersOnly] static method per fuse_operations member we serve; their addresses fill the table
//   (libfuse copies it in fuse_new). No delegates, no GCHandles per callback, no marshalling: AOT-friendly.
// - Every callback is try { ... } catch (Exception e) { return Fail(...) } — an exception escaping into native
//   code would terminate the process, and every request must get an answer. Fail = Errno.From (one log line).
// - The instance is found through fuse_get_context()->private_data (FuseSession GCHandle).
// - read/write wrap libfuse's buffer in a Span (no copy, no allocation) and pass only the handle.
// - Platform: the file system works in canonical forms (Stat, StatVfs, Linux errno and O_* numbers). Where
//   NativeAbi.Current differs, getattr/statfs fill a canonical struct and copy it into the native one, open/create
//   show the file system canonical fi->flags, and Fail returns the native errno. On linux-x64 every one of these
//   is the identity and the native struct is filled in place, exactly as before.
// - Members left null (xattrs, access, lock, flock, bmap, ioctl, poll, read_buf/write_buf, copy_file_range) make
//   libfuse answer ENOSYS, and the kernel falls back or stops asking (access: default_permissions is used).

/// <summary>The libfuse3 callback table for linux-x64, dispatching to <see cref="IFuseFileSystem"/>.</summary>
internal static unsafe partial class FuseCallbacks
{
    public static FuseOperations Create() => new()
    {
        getattr = &GetAttr,
        readlink = &ReadLink,
        mknod = &MakeNode,
        mkdir = &MakeDirectory,
        unlink = &Unlink,
        rmdir = &RemoveDirectory,
        symlink = &Symlink,
        rename = &Rename,
        link = &Link,
        chmod = &ChangeMode,
        chown = &ChangeOwner,
        truncate = &Truncate,
        open = &Open,
        read = &Read,
        write = &Write,
        statfs = &StatFs,
        flush = &Flush,
        release = &Release,
        fsync = &Sync,
        opendir = &OpenDirectory,
        readdir = &ReadDirectory,
        releasedir = &ReleaseDirectory,
        init = &Init,
        destroy = &Destroy,
        create = &Create,
        utimens = &SetTimes,
        fallocate = &Allocate,
        lseek = &Seek,
    };

    private static ulong? Handle(FuseFileInfo* fi) => fi == null ? null : fi->Fh;

    private static int Fail(Exception e, FuseSession? session, string operation, byte* path)
    {
        int canonical;
        try
        {
            canonical = Errno.From(e, session?.Log, operation, path == null ? null : Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(path)));
        }
        catch
        {
            canonical = -Errno.EIO; // logging itself failed: still answer the request
        }

        return -Native.Errno.ToNative(-canonical);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int GetAttr(byte* path, Stat* st, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            if (Native.Stat.IsCanonical)
            {
                s.FileSystem.GetAttributes(new FusePath(path), Handle(fi), ref *st);
                return 0;
            }

            Stat canonical = default;
            s.FileSystem.GetAttributes(new FusePath(path), Handle(fi), ref canonical);
            StatLayout.Copy(NativeAbi.LinuxX64.Stat, (byte*)&canonical, Native.Stat, (byte*)st);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "getattr", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReadLink(byte* path, byte* buf, nuint size)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.ReadLink(new FusePath(path), new Span<byte>(buf, checked((int)size)));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "readlink", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int MakeNode(byte* path, uint mode, ulong dev)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.MakeNode(new FusePath(path), mode, dev);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "mknod", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int MakeDirectory(byte* path, uint mode)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.MakeDirectory(new FusePath(path), mode);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "mkdir", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Unlink(byte* path)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Unlink(new FusePath(path));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "unlink", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int RemoveDirectory(byte* path)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.RemoveDirectory(new FusePath(path));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "rmdir", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Symlink(byte* target, byte* linkPath)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Symlink(new FusePath(target), new FusePath(linkPath));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "symlink", linkPath);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Rename(byte* from, byte* to, uint flags)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Rename(new FusePath(from), new FusePath(to), flags);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "rename", from);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Link(byte* from, byte* to)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Link(new FusePath(from), new FusePath(to));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "link", from);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ChangeMode(byte* path, uint mode, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.ChangeMode(new FusePath(path), mode, Handle(fi));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "chmod", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ChangeOwner(byte* path, uint uid, uint gid, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.ChangeOwner(new FusePath(path), uid, gid, Handle(fi));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "chown", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Truncate(byte* path, long length, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Truncate(new FusePath(path), length, Handle(fi));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "truncate", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Open(byte* path, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            WithCanonicalFlags(fi, s, new FusePath(path), 0, &CallOpen);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "open", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Create(byte* path, uint mode, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            WithCanonicalFlags(fi, s, new FusePath(path), mode, &CallCreate);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "create", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Read(byte* path, byte* buf, nuint size, long offset, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            return s.FileSystem.Read(fi->Fh, new Span<byte>(buf, checked((int)size)), offset);
        }
        catch (Exception e)
        {
            return Fail(e, s, "read", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Write(byte* path, byte* buf, nuint size, long offset, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            return s.FileSystem.Write(fi->Fh, new ReadOnlySpan<byte>(buf, checked((int)size)), offset);
        }
        catch (Exception e)
        {
            return Fail(e, s, "write", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int StatFs(byte* path, StatVfs* st)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            if (Native.StatVfs.IsCanonical)
            {
                s.FileSystem.StatFs(new FusePath(path), ref *st);
                return 0;
            }

            StatVfs canonical = default;
            s.FileSystem.StatFs(new FusePath(path), ref canonical);
            StatVfsLayout.Copy(NativeAbi.LinuxX64.StatVfs, (byte*)&canonical, Native.StatVfs, (byte*)st);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "statfs", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Flush(byte* path, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Flush(fi->Fh);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "flush", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Release(byte* path, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Release(fi->Fh);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "release", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Sync(byte* path, int dataOnly, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.Sync(fi->Fh, dataOnly != 0);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "fsync", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int SetTimes(byte* path, Timespec* tv, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            if (Native.UtimeNow == NativeAbi.LinuxX64.UtimeNow)
            {
                s.FileSystem.SetTimes(new FusePath(path), tv[0], tv[1], Handle(fi));
                return 0;
            }

            var access = new Timespec { Seconds = tv[0].Seconds, Nanoseconds = Native.ToCanonicalNanoseconds(tv[0].Nanoseconds) };
            var modify = new Timespec { Seconds = tv[1].Seconds, Nanoseconds = Native.ToCanonicalNanoseconds(tv[1].Nanoseconds) };
            s.FileSystem.SetTimes(new FusePath(path), access, modify, Handle(fi));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "utimens", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int Allocate(byte* path, int mode, long offset, long length, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            if (fi == null)
            {
                throw new ErrnoException(Errno.EBADF, "fallocate without an open file");
            }

            s.FileSystem.Allocate(fi->Fh, mode, offset, length);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "fallocate", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static long Seek(byte* path, long offset, int whence, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            if (fi == null)
            {
                throw new ErrnoException(Errno.EBADF, "lseek without an open file");
            }

            return s.FileSystem.Seek(fi->Fh, offset, Native.Whence.ToCanonical(whence));
        }
        catch (Exception e)
        {
            return Fail(e, s, "lseek", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void* Init(FuseConnInfo* conn, FuseConfig* cfg)
    {
        var ctx = LibFuse.fuse_get_context();
        nint privateData = ctx == null ? 0 : ctx->PrivateData;
        FuseSession? s = null;
        try
        {
            s = (FuseSession)GCHandle.FromIntPtr(privateData).Target!;
            var o = s.Options;
            cfg->EntryTimeout = o.EntryTimeout.TotalSeconds;
            cfg->AttrTimeout = o.AttributeTimeout.TotalSeconds;
            cfg->NegativeTimeout = 0;
            cfg->UseIno = 1;
            cfg->ReaddirIno = 0;
            cfg->HardRemove = 1;  // unlink open files for real (no .fuse_hidden* files beside the user's)
            cfg->NullPathOk = 1;  // read/write/release get only the handle
            cfg->DirectIo = 0;    // per open: virtual files set fi->direct_io, pass-through files keep the page cache
            cfg->KernelCache = 0;
            cfg->AutoCache = 0;
            conn->MaxWrite = (uint)FuseMountOptions.MaxRequestBytes; // libfuse >= 3.6 caps it at its buffer (1 MiB)
            if (!Native.IsMacOS)
            {
                conn->MaxRead = (uint)FuseMountOptions.MaxRequestBytes;  // must equal the -o max_read we pass (else EPROTO); none on macOS
            }

            s.Initialized(*conn);
        }
        catch (Exception e)
        {
            Fail(e, s, "init", null);
        }

        return (void*)privateData;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Destroy(void* privateData)
    {
    }
}
