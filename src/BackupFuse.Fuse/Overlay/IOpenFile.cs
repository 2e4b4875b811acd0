using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - What an open regular file of DirectoryOverlayFileSystem does with the operations FUSE sends on its handle. Two
//   kinds, one file each: PassThroughFile (a descriptor of the underlying file; the page cache is kept) and
//   VirtualFile (an IBlockSource from IVirtualFileProvider plus an O_PATH descriptor of the plugin file for metadata
//   calls; direct_io). The file system keeps both in one HandleTable (fi->fh = the slot) and dispatches every
//   handle operation through this interface, so no code asks "is this handle virtual" (go-fuse separates loopback
//   nodes from the files they open the same way).
// - Errors are exceptions: ErrnoException with the errno FUSE must answer (FuseCallbacks maps the rest). The
//   FusePath arguments are only for messages; with nullpath_ok they are usually null ("(open file)").
// - What stays in the file system: checks common to both kinds that come first (EROFS of a read-only mount for
//   chmod/chown/utimens/truncate), path-based operations, and the table itself.
// - Threading: every member may run concurrently on FUSE worker threads, except Dispose (release), which the kernel
//   sends after the last other request on the handle; the file system calls it once, when it removes the slot.

/// <summary>An open file of the overlay: the operations FUSE sends on a handle (see design notes).</summary>
internal interface IOpenFile : IDisposable
{
    /// <summary>read: the bytes read into <paramref name="buffer"/>; fewer than asked only at end of file.</summary>
    int Read(Span<byte> buffer, long offset);

    /// <summary>write: the bytes written (all of them unless an error is thrown).</summary>
    int Write(ReadOnlySpan<byte> data, long offset);

    /// <summary>getattr on the handle (fstat).</summary>
    void GetAttributes(FusePath path, ref Stat stat);

    /// <summary>chmod on the handle (permission bits of <paramref name="mode"/>).</summary>
    void ChangeMode(FusePath path, uint mode);

    /// <summary>chown on the handle; uint.MaxValue leaves an id unchanged.</summary>
    void ChangeOwner(FusePath path, uint uid, uint gid);

    /// <summary>utimens on the handle (UTIME_NOW / UTIME_OMIT allowed).</summary>
    void SetTimes(FusePath path, in Timespec access, in Timespec modify);

    /// <summary>ftruncate.</summary>
    void Truncate(FusePath path, long length);

    /// <summary>flush: called on every close(2) of a descriptor of this open file.</summary>
    void Flush();

    /// <summary>fsync / fdatasync.</summary>
    void Sync(bool dataOnly);

    /// <summary>fallocate.</summary>
    void Allocate(int mode, long offset, long length);

    /// <summary>lseek with SEEK_DATA / SEEK_HOLE (the kernel answers the other whence values itself).</summary>
    long Seek(long offset, int whence);
}
