using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

// Design notes:
// - The contract between the libfuse callbacks (FuseCallbacks) and a file system: Linux semantics, linux-x64
//   structs and numbers on every platform (FuseCallbacks translates where the platform differs), paths as
//   FusePath (no allocation), open files as the 64-bit handle the file system put into fi->fh. Errors are exceptions; FuseCallbacks maps them through Errno.From, so implementations never return
//   errno codes.
// - Every member has a default that throws ENOSYS, so an implementation states only what it serves (libfuse and
//   the kernel then fall back where they can, e.g. copy_file_range → read/write).
// - Calls arrive concurrently on libfuse worker threads; implementations are thread-safe.
// - Operations on an open file get only the handle (nullpath_ok): no path is built per read/write.

/// <summary>A file system served through FUSE (Linux semantics; see design notes).</summary>
public unsafe interface IFuseFileSystem
{
    /// <summary>getattr; <paramref name="handle"/> is set when the kernel asks about an open file (fstat).</summary>
    void GetAttributes(FusePath path, ulong? handle, ref Stat stat) => throw NotImplemented();

    /// <summary>readlink: fills <paramref name="buffer"/> with the NUL-terminated target (truncated to fit).</summary>
    void ReadLink(FusePath path, Span<byte> buffer) => throw NotImplemented();

    /// <summary>mknod (FIFOs, sockets, device nodes).</summary>
    void MakeNode(FusePath path, uint mode, ulong device) => throw NotImplemented();

    /// <summary>mkdir.</summary>
    void MakeDirectory(FusePath path, uint mode) => throw NotImplemented();

    /// <summary>unlink.</summary>
    void Unlink(FusePath path) => throw NotImplemented();

    /// <summary>rmdir.</summary>
    void RemoveDirectory(FusePath path) => throw NotImplemented();

    /// <summary>symlink: <paramref name="target"/> is the raw link text (not a mount path).</summary>
    void Symlink(FusePath target, FusePath linkPath) => throw NotImplemented();

    /// <summary>rename with renameat2 flags (RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2).</summary>
    void Rename(FusePath from, FusePath to, uint flags) => throw NotImplemented();

    /// <summary>link (hard link).</summary>
    void Link(FusePath from, FusePath to) => throw NotImplemented();

    /// <summary>chmod.</summary>
    void ChangeMode(FusePath path, uint mode, ulong? handle) => throw NotImplemented();

    /// <summary>chown; uint.MaxValue means "leave unchanged".</summary>
    void ChangeOwner(FusePath path, uint uid, uint gid, ulong? handle) => throw NotImplemented();

    /// <summary>truncate / ftruncate.</summary>
    void Truncate(FusePath path, long length, ulong? handle) => throw NotImplemented();

    /// <summary>utimensat semantics: nanoseconds may be UTIME_NOW or UTIME_OMIT.</summary>
    void SetTimes(FusePath path, in Timespec access, in Timespec modify, ulong? handle) => throw NotImplemented();

    /// <summary>open: sets fi.Fh (and may set direct_io / keep_cache).</summary>
    void Open(FusePath path, ref FuseFileInfo fi) => throw NotImplemented();

    /// <summary>create (open with O_CREAT): creates the file with <paramref name="mode"/> and opens it.</summary>
    void Create(FusePath path, uint mode, ref FuseFileInfo fi) => throw NotImplemented();

    /// <summary>read: returns the bytes read; fewer than asked only at end of file.</summary>
    int Read(ulong handle, Span<byte> buffer, long offset) => throw NotImplemented();

    /// <summary>write: returns the bytes written (all of them unless an error is thrown).</summary>
    int Write(ulong handle, ReadOnlySpan<byte> data, long offset) => throw NotImplemented();

    /// <summary>flush (called on every close of a descriptor).</summary>
    void Flush(ulong handle)
    {
    }

    /// <summary>release (last close of the open file).</summary>
    void Release(ulong handle)
    {
    }

    /// <summary>fsync / fdatasync.</summary>
    void Sync(ulong handle, bool dataOnly)
    {
    }

    /// <summary>fallocate.</summary>
    void Allocate(ulong handle, int mode, long offset, long length) => throw NotImplemented();

    /// <summary>lseek for SEEK_DATA / SEEK_HOLE (the kernel handles the other whence values).</summary>
    long Seek(ulong handle, long offset, int whence) => throw NotImplemented();

    /// <summary>statfs.</summary>
    void StatFs(FusePath path, ref StatVfs stat) => throw NotImplemented();

    /// <summary>opendir: sets fi.Fh.</summary>
    void OpenDirectory(FusePath path, ref FuseFileInfo fi) => throw NotImplemented();

    /// <summary>readdir: adds every entry (including "." and "..") from the start.</summary>
    void ReadDirectory(ulong handle, DirectoryFiller filler) => throw NotImplemented();

    /// <summary>releasedir.</summary>
    void ReleaseDirectory(ulong handle)
    {
    }

    /// <summary>The exception a default member throws.</summary>
    protected static ErrnoException NotImplemented() => new(Errno.ENOSYS, "operation not implemented");
}
