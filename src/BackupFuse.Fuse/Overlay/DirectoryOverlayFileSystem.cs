using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - Serves a directory through a descriptor opened before mounting (UnderlyingDirectory), so the mount may cover
//   that very directory. Every operation is an *at() call relative to that descriptor or works on an open fd.
// - Open files: fi->fh is a slot of one handle table of IOpenFile, and every operation on a handle is dispatched
//   through that interface. Two kinds: PassThroughFile (the descriptor from openat, flags passed through except
//   O_DIRECT, whose alignment rules libfuse's buffers do not meet; pread/pwrite; the page cache is kept) and
//   VirtualFile (see below).
// - Virtual files (IVirtualFileProvider.Probe returned info for a regular file): getattr reports the provider's
//   size/allocation, readdir lists them like any file, open makes a VirtualFile of the provider's IBlockSource
//   (direct_io; reads go straight into libfuse's buffer; EOF clamps to a short read; truncation to another size is
//   EPERM; SEEK_DATA/SEEK_HOLE follow GetExtent).
// - Ownership: when running as root, objects created for another caller are chowned to the caller (a setgid
//   parent keeps its group), and the requested mode is applied exactly (the daemon's umask must not interfere;
//   the kernel has already applied the caller's umask).
// - Read-only mode: the kernel refuses namespace changes on an -o ro mount; opens for writing are refused here too.
// - Thread-safe: no per-path state; the handle table is the only shared structure. Dispose releases every file
//   still open (after the mount has ended).
// - Not done: xattrs, POSIX/BSD locks (the kernel keeps them local), copy_file_range (kernel falls back).

/// <summary>A pass-through view of a directory in which some regular files are virtual (see design notes).</summary>
public sealed unsafe partial class DirectoryOverlayFileSystem : IFuseFileSystem, IDisposable
{
    private readonly UnderlyingDirectory _directory;
    private readonly IVirtualFileProvider? _provider;
    private readonly HandleTable<IOpenFile> _files = new();
    private readonly bool _isRoot;

    /// <summary>Serves <paramref name="directory"/> (taking ownership of it).</summary>
    public DirectoryOverlayFileSystem(UnderlyingDirectory directory, IVirtualFileProvider? provider = null, bool readOnly = false)
    {
        _directory = directory ?? throw new ArgumentNullException(nameof(directory));
        _provider = provider;
        ReadOnly = readOnly;
        _isRoot = LibC.geteuid() == 0;
    }

    /// <summary>The served directory.</summary>
    public UnderlyingDirectory Directory => _directory;

    /// <summary>Whether writes are refused.</summary>
    public bool ReadOnly { get; }

    private int Dir => _directory.Descriptor;

    /// <summary>Opens <paramref name="directoryPath"/> (before mounting over it!) and serves it.</summary>
    public static DirectoryOverlayFileSystem Open(string directoryPath, IVirtualFileProvider? provider = null, bool readOnly = false) =>
        new(UnderlyingDirectory.Open(directoryPath), provider, readOnly);

    /// <inheritdoc/>
    public void GetAttributes(FusePath path, ulong? handle, ref Stat stat)
    {
        fixed (Stat* st = &stat)
        {
            if (handle is { } h)
            {
                FileOf(h).GetAttributes(path, ref *st);
                return;
            }

            Check(LibC.fstatat(Dir, path.Relative, st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            if (ProbeVirtual(path, *st) is { } info)
            {
                VirtualFile.ApplyInfo(ref *st, info);
            }
        }
    }

    /// <inheritdoc/>
    public void ReadLink(FusePath path, Span<byte> buffer)
    {
        fixed (byte* b = buffer)
        {
            nint n = LibC.readlinkat(Dir, path.Relative, b, (nuint)(buffer.Length - 1));
            if (n < 0)
            {
                throw Failure("readlink", path);
            }

            b[n] = 0;
        }
    }

    /// <inheritdoc/>
    public void MakeNode(FusePath path, uint mode, ulong device)
    {
        ThrowIfReadOnly(path);
        Check(LibC.mknodat(Dir, path.Relative, mode, device), "mknod", path);
        AdoptNewObject(path.Relative, -1, mode);
    }

    /// <inheritdoc/>
    public void MakeDirectory(FusePath path, uint mode)
    {
        ThrowIfReadOnly(path);
        Check(LibC.mkdirat(Dir, path.Relative, mode), "mkdir", path);
        AdoptNewObject(path.Relative, -1, mode | LibC.S_IFDIR);
    }

    /// <inheritdoc/>
    public void Unlink(FusePath path)
    {
        ThrowIfReadOnly(path);
        Check(LibC.unlinkat(Dir, path.Relative, 0), "unlink", path);
    }

    /// <inheritdoc/>
    public void RemoveDirectory(FusePath path)
    {
        ThrowIfReadOnly(path);
        Check(LibC.unlinkat(Dir, path.Relative, LibC.AT_REMOVEDIR), "rmdir", path);
    }

    /// <inheritdoc/>
    public void Symlink(FusePath target, FusePath linkPath)
    {
        ThrowIfReadOnly(linkPath);
        Check(LibC.symlinkat(target.Pointer, Dir, linkPath.Relative), "symlink", linkPath);
        AdoptNewObject(linkPath.Relative, -1, LibC.S_IFLNK);
    }

    /// <inheritdoc/>
    public void Rename(FusePath from, FusePath to, uint flags)
    {
        ThrowIfReadOnly(from);
        Check(LibC.renameat2(Dir, from.Relative, Dir, to.Relative, flags), "rename", from);
    }

    /// <inheritdoc/>
    public void Link(FusePath from, FusePath to)
    {
        ThrowIfReadOnly(from);
        Check(LibC.linkat(Dir, from.Relative, Dir, to.Relative, 0), "link", from);
    }

    /// <inheritdoc/>
    public void ChangeMode(FusePath path, uint mode, ulong? handle)
    {
        ThrowIfReadOnly(path);
        if (handle is { } h)
        {
            FileOf(h).ChangeMode(path, mode);
            return;
        }

        Check(LibC.fchmodat(Dir, path.Relative, mode & 0xFFF, 0), "chmod", path);
    }

    /// <inheritdoc/>
    public void ChangeOwner(FusePath path, uint uid, uint gid, ulong? handle)
    {
        ThrowIfReadOnly(path);
        if (handle is { } h)
        {
            FileOf(h).ChangeOwner(path, uid, gid);
            return;
        }

        Check(LibC.fchownat(Dir, path.Relative, uid, gid, LibC.AT_SYMLINK_NOFOLLOW), "chown", path);
    }

    /// <inheritdoc/>
    public void SetTimes(FusePath path, in Timespec access, in Timespec modify, ulong? handle)
    {
        ThrowIfReadOnly(path);
        if (handle is { } h)
        {
            FileOf(h).SetTimes(path, access, modify);
            return;
        }

        Timespec* times = stackalloc Timespec[2];
        times[0] = access;
        times[1] = modify;
        Check(LibC.utimensat(Dir, path.Relative, times, LibC.AT_SYMLINK_NOFOLLOW), "utimens", path);
    }

    /// <inheritdoc/>
    public void StatFs(FusePath path, ref StatVfs stat)
    {
        fixed (StatVfs* st = &stat)
        {
            Check(LibC.fstatvfs(Dir, st), "statfs", path);
        }
    }

    /// <inheritdoc/>
    public void OpenDirectory(FusePath path, ref FuseFileInfo fi)
    {
        int fd = LibC.openat(Dir, path.Relative, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Failure("opendir", path);
        }

        nint dir = LibC.fdopendir(fd);
        if (dir == 0)
        {
            var e = Failure("fdopendir", path);
            LibC.close(fd);
            throw e;
        }

        fi.Fh = (ulong)dir;
    }

    /// <inheritdoc/>
    public void ReadDirectory(ulong handle, DirectoryFiller filler)
    {
        nint dir = (nint)handle;
        LibC.rewinddir(dir);
        while (true)
        {
            Dirent* d = LibC.readdir(dir);
            if (d == null)
            {
                if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() != 0)
                {
                    throw ErrnoException.FromLastError("readdir", _directory.Path);
                }

                return;
            }

            if (!filler.Add(&d->Name, d->Inode, (uint)d->Type << 12))
            {
                return;
            }
        }
    }

    /// <inheritdoc/>
    public void ReleaseDirectory(ulong handle) => LibC.closedir((nint)handle);

    /// <summary>Closes the directory and every file still open.</summary>
    public void Dispose()
    {
        foreach (var file in _files.RemoveAll())
        {
            file.Dispose();
        }

        _directory.Dispose();
    }

    /// <summary>The open file behind a handle this file system put into fi->fh (EBADF for any other value).</summary>
    private IOpenFile FileOf(ulong handle) =>
        handle <= int.MaxValue ? _files.Get((int)handle) : throw new ErrnoException(Errno.EBADF, $"no open file with handle {handle}");

    /// <summary>Registers an open file; its slot is the handle for fi->fh.</summary>
    private ulong AddFile(IOpenFile file) => (ulong)_files.Add(file);

    private void ThrowIfReadOnly(FusePath path)
    {
        if (ReadOnly)
        {
            throw new ErrnoException(Errno.EROFS, $"{path.ToString()}: the mount is read-only");
        }
    }

    /// <summary>Makes a just-created object look created by the caller: owner (when we are root) and exact mode.</summary>
    private void AdoptNewObject(byte* relative, int fd, uint mode)
    {
        Stat st;
        int rc = fd >= 0 ? LibC.fstat(fd, &st) : LibC.fstatat(Dir, relative, &st, LibC.AT_SYMLINK_NOFOLLOW);
        if (rc != 0)
        {
            return; // removed already by someone else: nothing to adopt
        }

        var caller = FuseCaller.Current;
        if (_isRoot && (caller.Uid != st.Uid || caller.Gid != st.Gid))
        {
            uint gid = (st.Mode & LibC.S_IFMT) != LibC.S_IFLNK && ParentIsSetGid(relative) ? uint.MaxValue : caller.Gid;
            rc = fd >= 0 ? LibC.fchown(fd, caller.Uid, gid) : LibC.fchownat(Dir, relative, caller.Uid, gid, LibC.AT_SYMLINK_NOFOLLOW);
            if (rc != 0)
            {
                throw ErrnoException.FromLastError("chown new file");
            }
        }

        if ((st.Mode & LibC.S_IFMT) == LibC.S_IFLNK)
        {
            return;
        }

        uint wanted = mode & 0xFFF;
        if ((st.Mode & LibC.S_IFMT) == LibC.S_IFDIR)
        {
            wanted |= st.Mode & 0x400; // S_ISGID inherited from a setgid parent stays
        }

        if ((st.Mode & 0xFFF) != wanted || (_isRoot && caller.Uid != st.Uid))
        {
            rc = fd >= 0 ? LibC.fchmod(fd, wanted) : LibC.fchmodat(Dir, relative, wanted, 0);
            if (rc != 0)
            {
                throw ErrnoException.FromLastError("chmod new file");
            }
        }
    }

    private bool ParentIsSetGid(byte* relative)
    {
        int lastSlash = -1;
        int length = 0;
        for (; relative[length] != 0; length++)
        {
            if (relative[length] == '/')
            {
                lastSlash = length;
            }
        }

        Stat st;
        if (lastSlash < 0)
        {
            return LibC.fstat(Dir, &st) == 0 && (st.Mode & 0x400) != 0;
        }

        byte* parent = stackalloc byte[lastSlash + 1];
        new ReadOnlySpan<byte>(relative, lastSlash).CopyTo(new Span<byte>(parent, lastSlash));
        parent[lastSlash] = 0;
        return LibC.fstatat(Dir, parent, &st, 0) == 0 && (st.Mode & 0x400) != 0;
    }

    /// <summary>Throws the ErrnoException of the last libc call when <paramref name="rc"/> is not 0.</summary>
    internal static void Check(int rc, string operation, FusePath path)
    {
        if (rc != 0)
        {
            throw Failure(operation, path);
        }
    }

    /// <summary>Throws the ErrnoException of the last libc call when <paramref name="rc"/> is not 0.</summary>
    internal static void Check(int rc, string operation, string path)
    {
        if (rc != 0)
        {
            throw ErrnoException.FromLastError(operation, path);
        }
    }

    private static ErrnoException Failure(string operation, FusePath path) => ErrnoException.FromLastError(operation, path.ToString());
}
