using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - Serves a directory through a descriptor opened before mounting (UnderlyingDirectory), so the mount may cover
//   that very directory. Every operation is an *at() call relative to that descriptor or works on an open fd.
// - No path is resolved through a symlink (the kernel follows symlinks itself before asking FUSE; one met here means
//   the tree changed under us, maybe on purpose to make root act elsewhere): opens resolve the whole path beneath
//   the directory (UnderlyingDirectory.OpenBeneath: ELOOP for a symlink), other operations open the parent that
//   way and apply their *at() call to the last name without following it (Parent). chmod by path pins the entry
//   with O_PATH|O_NOFOLLOW; a symlink's mode cannot be changed (EOPNOTSUPP, as Linux's lchmod answers).
// - Open files: fi->fh is a slot of one handle table of IOpenFile, and every operation on a handle is dispatched
//   through that interface. Two kinds: PassThroughFile (the descriptor from openat, flags passed through except
//   O_DIRECT, whose alignment rules libfuse's buffers do not meet; pread/pwrite; the page cache is kept) and
//   VirtualFile (see below).
// - Virtual files (IVirtualFileProvider.Probe returned info for a regular file): getattr reports the provider's
//   size/allocation, readdir lists them like any file, open makes a VirtualFile of the provider's IBlockSource
//   (direct_io; reads go straight into libfuse's buffer; EOF clamps to a short read; truncation to another size is
//   EPERM; SEEK_DATA/SEEK_HOLE follow GetExtent).
// - Virtual files' owner and mode are presented by VirtualFileOwnership (the mount's --owner/--mode, then what a
//   chown/chmod through the mount set, kept in memory): a chown or chmod of a virtual file never reaches the plugin
//   file underneath, whose real owner the provider's access rule keeps using (see VirtualFileOwnership).
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

    /// <summary>
    /// Serves <paramref name="directory"/> (taking ownership of it). <paramref name="ownership"/> presents the virtual
    /// files' owner and mode (null: their plugin files' own, changed only in memory by chown/chmod through the mount).
    /// </summary>
    public DirectoryOverlayFileSystem(UnderlyingDirectory directory, IVirtualFileProvider? provider = null, bool readOnly = false, VirtualFileOwnership? ownership = null)
    {
        _directory = directory ?? throw new ArgumentNullException(nameof(directory));
        _provider = provider;
        ReadOnly = readOnly;
        Ownership = ownership ?? new VirtualFileOwnership();
        _isRoot = LibC.geteuid() == 0;
    }

    /// <summary>The served directory.</summary>
    public UnderlyingDirectory Directory => _directory;

    /// <summary>Whether writes are refused.</summary>
    public bool ReadOnly { get; }

    /// <summary>The owner and mode presented for virtual files.</summary>
    public VirtualFileOwnership Ownership { get; }

    private int Dir => _directory.Descriptor;

    /// <summary>Opens <paramref name="directoryPath"/> (before mounting over it!) and serves it.</summary>
    public static DirectoryOverlayFileSystem Open(string directoryPath, IVirtualFileProvider? provider = null, bool readOnly = false, VirtualFileOwnership? ownership = null) =>
        new(UnderlyingDirectory.Open(directoryPath), provider, readOnly, ownership);

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

            using (var at = Parent(path, "stat"))
            {
                Check(LibC.fstatat(at.Descriptor, at.Name, st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            }

            if (ProbeVirtual(path, *st) is { } info)
            {
                Ownership.Apply(ref *st);
                VirtualFile.ApplyInfo(ref *st, info);
            }
        }
    }

    /// <inheritdoc/>
    public void ReadLink(FusePath path, Span<byte> buffer)
    {
        using var at = Parent(path, "readlink");
        fixed (byte* b = buffer)
        {
            nint n = LibC.readlinkat(at.Descriptor, at.Name, b, (nuint)(buffer.Length - 1));
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
        using var at = Parent(path, "mknod");
        Check(LibC.mknodat(at.Descriptor, at.Name, mode, device), "mknod", path);
        AdoptNewObject(at, -1, (mode & LibC.S_IFMT) == 0 ? mode | LibC.S_IFREG : mode);
    }

    /// <inheritdoc/>
    public void MakeDirectory(FusePath path, uint mode)
    {
        ThrowIfReadOnly(path);
        using var at = Parent(path, "mkdir");
        Check(LibC.mkdirat(at.Descriptor, at.Name, mode), "mkdir", path);
        AdoptNewObject(at, -1, (mode & 0xFFF) | LibC.S_IFDIR);
    }

    /// <inheritdoc/>
    public void Unlink(FusePath path)
    {
        ThrowIfReadOnly(path);
        using var at = Parent(path, "unlink");
        Check(LibC.unlinkat(at.Descriptor, at.Name, 0), "unlink", path);
    }

    /// <inheritdoc/>
    public void RemoveDirectory(FusePath path)
    {
        ThrowIfReadOnly(path);
        using var at = Parent(path, "rmdir");
        Check(LibC.unlinkat(at.Descriptor, at.Name, LibC.AT_REMOVEDIR), "rmdir", path);
    }

    /// <inheritdoc/>
    public void Symlink(FusePath target, FusePath linkPath)
    {
        ThrowIfReadOnly(linkPath);
        using var at = Parent(linkPath, "symlink");
        Check(LibC.symlinkat(target.Pointer, at.Descriptor, at.Name), "symlink", linkPath);
        AdoptNewObject(at, -1, LibC.S_IFLNK);
    }

    /// <inheritdoc/>
    public void Rename(FusePath from, FusePath to, uint flags)
    {
        ThrowIfReadOnly(from);
        using var source = Parent(from, "rename");
        using var target = Parent(to, "rename");
        Check(LibC.Rename(source.Descriptor, source.Name, target.Descriptor, target.Name, flags), "rename", from);
    }

    /// <inheritdoc/>
    public void Link(FusePath from, FusePath to)
    {
        ThrowIfReadOnly(from);
        using var source = Parent(from, "link");
        using var target = Parent(to, "link");
        Check(LibC.linkat(source.Descriptor, source.Name, target.Descriptor, target.Name, 0), "link", from);
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

        using var at = Parent(path, "chmod");
        if (VirtualStat(at, path) is { } underlying)
        {
            Ownership.SetMode(underlying, mode);
            return;
        }

        Check(UnderlyingDirectory.ChangeModeNoFollow(at.Descriptor, at.Name, mode & 0xFFF), "chmod", path);
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

        using var at = Parent(path, "chown");
        if (VirtualStat(at, path) is { } underlying)
        {
            Ownership.SetOwner(underlying, uid, gid);
            return;
        }

        Check(LibC.fchownat(at.Descriptor, at.Name, uid, gid, LibC.AT_SYMLINK_NOFOLLOW), "chown", path);
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
        using var at = Parent(path, "utimens");
        Check(LibC.utimensat(at.Descriptor, at.Name, times, LibC.AT_SYMLINK_NOFOLLOW), "utimens", path);
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
        int fd = _directory.OpenBeneath(path.Relative, LibC.O_RDONLY | LibC.O_DIRECTORY);
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
            if (!LibC.ReadDirectoryEntry(dir, out ulong inode, out byte type, out byte* name))
            {
                if (LibC.LastError() != 0)
                {
                    throw ErrnoException.FromLastError("readdir", _directory.Path);
                }

                return;
            }

            if (!filler.Add(name, inode, (uint)type << 12))
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

    /// <summary>The underlying stat of <paramref name="path"/> when it is a virtual file, else null.</summary>
    private Stat? VirtualStat(in BeneathParent at, FusePath path)
    {
        if (_provider == null)
        {
            return null;
        }

        Stat st;
        Check(LibC.fstatat(at.Descriptor, at.Name, &st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
        return ProbeVirtual(path, st) != null ? st : null;
    }

    private void ThrowIfReadOnly(FusePath path)
    {
        if (ReadOnly)
        {
            throw new ErrnoException(Errno.EROFS, $"{path.ToString()}: the mount is read-only");
        }
    }

    /// <summary>
    /// The parent directory of <paramref name="path"/>'s last component, resolved beneath the served directory, and
    /// that name (see design notes); the ErrnoException of <paramref name="operation"/> when it cannot be reached.
    /// </summary>
    private BeneathParent Parent(FusePath path, string operation) =>
        _directory.TryOpenParent(path.Relative, out var parent) ? parent : throw Failure(operation, path);

    /// <summary>
    /// Makes a just-created object look created by the caller: owner (when we are root) and exact mode. Without an
    /// open descriptor (<paramref name="fd"/> -1) the entry is pinned (LibC.OpenPinned: never followed) and adopted only if it
    /// still is what was created (<paramref name="mode"/>'s type; one link unless a directory), so a swap in between
    /// never hands over another file.
    /// </summary>
    private void AdoptNewObject(in BeneathParent at, int fd, uint mode)
    {
        int pinned = -1;
        if (fd < 0)
        {
            pinned = LibC.OpenPinned(at.Descriptor, at.Name);
            if (pinned < 0)
            {
                return; // removed already by someone else: nothing to adopt
            }
        }

        try
        {
            Adopt(at, fd >= 0 ? fd : pinned, pinnedOnly: fd < 0, mode);
        }
        finally
        {
            if (pinned >= 0)
            {
                LibC.close(pinned);
            }
        }
    }

    private void Adopt(in BeneathParent at, int fd, bool pinnedOnly, uint mode)
    {
        Stat st;
        if (LibC.fstat(fd, &st) != 0)
        {
            throw ErrnoException.FromLastError("stat new file");
        }

        uint type = st.Mode & LibC.S_IFMT;
        if (pinnedOnly && (type != (mode & LibC.S_IFMT) || (type != LibC.S_IFDIR && st.LinkCount != 1)))
        {
            return; // replaced by something else meanwhile: not ours to adopt
        }

        var caller = FuseCaller.Current;
        if (_isRoot && (caller.Uid != st.Uid || caller.Gid != st.Gid))
        {
            uint gid = type != LibC.S_IFLNK && ParentIsSetGid(at.Descriptor) ? uint.MaxValue : caller.Gid;
            if (LibC.ChownPinned(fd, caller.Uid, gid) != 0)
            {
                throw ErrnoException.FromLastError("chown new file");
            }
        }

        if (type == LibC.S_IFLNK)
        {
            return;
        }

        uint wanted = mode & 0xFFF;
        if (type == LibC.S_IFDIR)
        {
            wanted |= st.Mode & 0x400; // S_ISGID inherited from a setgid parent stays
        }

        if ((st.Mode & 0xFFF) != wanted || (_isRoot && caller.Uid != st.Uid))
        {
            int rc = pinnedOnly ? UnderlyingDirectory.ChangeModeOfPathDescriptor(fd, wanted) : LibC.fchmod(fd, wanted);
            if (rc != 0)
            {
                throw ErrnoException.FromLastError("chmod new file");
            }
        }
    }

    private static bool ParentIsSetGid(int parent)
    {
        Stat st;
        return LibC.fstat(parent, &st) == 0 && (st.Mode & 0x400) != 0;
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
