using System.Runtime.CompilerServices;
using BackupFuse.Core;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

/// <summary>Opening files (PassThroughFile or VirtualFile) and dispatching handle operations through IOpenFile.</summary>
public sealed unsafe partial class DirectoryOverlayFileSystem
{
    /// <inheritdoc/>
    public void Open(FusePath path, ref FuseFileInfo fi)
    {
        bool write = (fi.Flags & LibC.O_ACCMODE) != LibC.O_RDONLY;
        if (ReadOnly && (write || (fi.Flags & LibC.O_TRUNC) != 0))
        {
            throw new ErrnoException(Errno.EROFS, $"{path.ToString()}: the mount is read-only");
        }

        if (_provider != null)
        {
            Stat st;
            using (var at = Parent(path, "stat"))
            {
                Check(LibC.fstatat(at.Descriptor, at.Name, &st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            }

            if (ProbeVirtual(path, st) is { } info)
            {
                OpenVirtual(path, st, info, write, ref fi);
                return;
            }
        }

        int fd = _directory.OpenBeneath(path.Relative, PassThroughFlags(fi.Flags) | LibC.O_NOFOLLOW);
        if (fd < 0)
        {
            throw Failure("open", path);
        }

        fi.Fh = AddFile(new PassThroughFile(fd, ReadOnly));
    }

    /// <inheritdoc/>
    public void Create(FusePath path, uint mode, ref FuseFileInfo fi)
    {
        ThrowIfReadOnly(path);
        using var at = Parent(path, "create");
        int fd = LibC.openat(at.Descriptor, at.Name, PassThroughFlags(fi.Flags) | LibC.O_CREAT | LibC.O_EXCL | LibC.O_NOFOLLOW, mode & 0xFFF);
        if (fd < 0)
        {
            var e = Failure("create", path);
            if (e.Errno == Errno.EEXIST && (fi.Flags & LibC.O_EXCL) == 0)
            {
                Open(path, ref fi); // created by someone else meanwhile: open it like open(2) would
                return;
            }

            throw e;
        }

        try
        {
            AdoptNewObject(at, fd, mode);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }

        fi.Fh = AddFile(new PassThroughFile(fd, ReadOnly));
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Read(ulong handle, Span<byte> buffer, long offset) => FileOf(handle).Read(buffer, offset);

    /// <inheritdoc/>
    public int Write(ulong handle, ReadOnlySpan<byte> data, long offset) => FileOf(handle).Write(data, offset);

    /// <inheritdoc/>
    public void Truncate(FusePath path, long length, ulong? handle)
    {
        ThrowIfReadOnly(path);
        if (handle is { } h)
        {
            FileOf(h).Truncate(path, length);
            return;
        }

        if (_provider != null)
        {
            Stat st;
            using (var at = Parent(path, "stat"))
            {
                Check(LibC.fstatat(at.Descriptor, at.Name, &st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            }

            if (ProbeVirtual(path, st) is { } info)
            {
                VirtualFile.RefuseResize(path.ToString(), info.Length, length);
                return;
            }
        }

        int fd = _directory.OpenBeneath(path.Relative, LibC.O_WRONLY | LibC.O_NOFOLLOW | LibC.O_NONBLOCK);
        if (fd < 0)
        {
            throw Failure("truncate", path);
        }

        try
        {
            Check(LibC.ftruncate(fd, length), "truncate", path);
        }
        finally
        {
            LibC.close(fd);
        }
    }

    /// <inheritdoc/>
    public void Flush(ulong handle) => FileOf(handle).Flush();

    /// <inheritdoc/>
    public void Release(ulong handle)
    {
        if (handle <= int.MaxValue)
        {
            _files.Remove((int)handle)?.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Sync(ulong handle, bool dataOnly) => FileOf(handle).Sync(dataOnly);

    /// <inheritdoc/>
    public void Allocate(ulong handle, int mode, long offset, long length) => FileOf(handle).Allocate(mode, offset, length);

    /// <inheritdoc/>
    public long Seek(ulong handle, long offset, int whence) => FileOf(handle).Seek(offset, whence);

    private static int PassThroughFlags(int flags) =>
        (flags & ~(LibC.O_CREAT | LibC.O_EXCL | LibC.O_DIRECT)) | LibC.O_CLOEXEC;

    private VirtualFileInfo? ProbeVirtual(FusePath path, in Stat st)
    {
        if (_provider == null || (st.Mode & LibC.S_IFMT) != LibC.S_IFREG)
        {
            return null;
        }

        return _provider.Probe(_directory, path.RelativeString, UnderlyingFileStat.From(st));
    }

    private void OpenVirtual(FusePath path, in Stat probed, VirtualFileInfo info, bool write, ref FuseFileInfo fi)
    {
        if ((fi.Flags & LibC.O_TRUNC) != 0)
        {
            throw new ErrnoException(Errno.EPERM, $"{path.ToString()}: a virtual file cannot be truncated");
        }

        int pathFd = _directory.PinBeneath(path.Relative);
        if (pathFd < 0)
        {
            throw Failure("open", path);
        }

        IBlockSource? source = null;
        try
        {
            Stat st;
            Check(LibC.fstat(pathFd, &st), "stat", path);
            if (st.Device != probed.Device || st.Inode != probed.Inode)
            {
                throw new ErrnoException(Errno.ENOENT, $"{path.ToString()}: replaced while it was opened");
            }

            var stat = UnderlyingFileStat.From(probed);
            string relative = path.RelativeString;
            source = _provider!.Open(_directory, relative, stat, write);
            if (write && !source.CanWrite)
            {
                throw new ErrnoException(Errno.EROFS, $"{path.ToString()}: the virtual file is read-only");
            }

            fi.Fh = AddFile(new VirtualFile(source, write, pathFd, relative, info, Ownership));
            fi.DirectIo = true;
        }
        catch
        {
            source?.Dispose();
            LibC.close(pathFd);
            throw;
        }
    }
}
