using System.Runtime.CompilerServices;
using BackupFuse.Blocks;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

/// <summary>Open files: pass-through descriptors and virtual block sources.</summary>
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
            Check(LibC.fstatat(Dir, path.Relative, &st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            if (ProbeVirtual(path, st) is { } info)
            {
                OpenVirtual(path, UnderlyingFileStat.From(st), info, write, ref fi);
                return;
            }
        }

        int fd = LibC.openat(Dir, path.Relative, PassThroughFlags(fi.Flags), 0);
        if (fd < 0)
        {
            throw Failure("open", path);
        }

        fi.Fh = (ulong)fd;
    }

    /// <inheritdoc/>
    public void Create(FusePath path, uint mode, ref FuseFileInfo fi)
    {
        ThrowIfReadOnly(path);
        int fd = LibC.openat(Dir, path.Relative, PassThroughFlags(fi.Flags) | LibC.O_CREAT | LibC.O_EXCL, mode & 0xFFF);
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
            AdoptNewObject(path.Relative, fd, mode);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }

        fi.Fh = (ulong)fd;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Read(ulong handle, Span<byte> buffer, long offset)
    {
        if (IsVirtual(handle))
        {
            var source = _virtualHandles.Get(Slot(handle)).Source;
            long length = source.Length;
            if (offset < 0)
            {
                throw new ErrnoException(Errno.EINVAL, "negative read offset");
            }

            if (offset >= length)
            {
                return 0;
            }

            int n = (int)Math.Min(buffer.Length, length - offset);
            source.Read(offset, buffer[..n]);
            return n;
        }

        int fd = (int)handle;
        int done = 0;
        fixed (byte* b = buffer)
        {
            while (done < buffer.Length)
            {
                nint n = LibC.pread(fd, b + done, (nuint)(buffer.Length - done), offset + done);
                if (n < 0)
                {
                    var e = ErrnoException.FromLastError("read");
                    if (e.Errno == Errno.EINTR)
                    {
                        continue;
                    }

                    throw e;
                }

                if (n == 0)
                {
                    break;
                }

                done += (int)n;
            }
        }

        return done;
    }

    /// <inheritdoc/>
    public int Write(ulong handle, ReadOnlySpan<byte> data, long offset)
    {
        if (IsVirtual(handle))
        {
            var vh = _virtualHandles.Get(Slot(handle));
            if (ReadOnly || !vh.Writable)
            {
                throw new ErrnoException(Errno.EROFS, $"{vh.RelativePath} is not open for writing");
            }

            if (offset < 0 || offset > vh.Source.Length - data.Length)
            {
                throw new ErrnoException(Errno.EFBIG, $"{vh.RelativePath}: write at {offset}+{data.Length} past the end of the virtual file ({vh.Source.Length} bytes); virtual files do not grow");
            }

            vh.Source.Write(offset, data);
            return data.Length;
        }

        int fd = (int)handle;
        int done = 0;
        fixed (byte* b = data)
        {
            while (done < data.Length)
            {
                nint n = LibC.pwrite(fd, b + done, (nuint)(data.Length - done), offset + done);
                if (n < 0)
                {
                    var e = ErrnoException.FromLastError("write");
                    if (e.Errno == Errno.EINTR)
                    {
                        continue;
                    }

                    throw e;
                }

                done += (int)n;
            }
        }

        return done;
    }

    /// <inheritdoc/>
    public void Truncate(FusePath path, long length, ulong? handle)
    {
        ThrowIfReadOnly(path);
        if (handle is { } h)
        {
            if (IsVirtual(h))
            {
                var vh = _virtualHandles.Get(Slot(h));
                RefuseVirtualResize(vh.RelativePath, vh.Source.Length, length);
                return;
            }

            Check(LibC.ftruncate((int)h, length), "truncate", path);
            return;
        }

        if (_provider != null)
        {
            Stat st;
            Check(LibC.fstatat(Dir, path.Relative, &st, LibC.AT_SYMLINK_NOFOLLOW), "stat", path);
            if (ProbeVirtual(path, st) is { } info)
            {
                RefuseVirtualResize(path.ToString(), info.Length, length);
                return;
            }
        }

        int fd = LibC.openat(Dir, path.Relative, LibC.O_WRONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
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
    public void Flush(ulong handle)
    {
        if (IsVirtual(handle))
        {
            var vh = _virtualHandles.Get(Slot(handle));
            if (vh.Writable)
            {
                vh.Source.Flush();
            }

            return;
        }

        // Like close(2) of the caller's descriptor: releases POSIX locks and reports delayed write errors.
        int dup = LibC.dup((int)handle);
        if (dup < 0 || LibC.close(dup) != 0)
        {
            throw ErrnoException.FromLastError("flush");
        }
    }

    /// <inheritdoc/>
    public void Release(ulong handle)
    {
        if (IsVirtual(handle))
        {
            _virtualHandles.Remove(Slot(handle))?.Dispose();
            return;
        }

        LibC.close((int)handle);
    }

    /// <inheritdoc/>
    public void Sync(ulong handle, bool dataOnly)
    {
        if (IsVirtual(handle))
        {
            _virtualHandles.Get(Slot(handle)).Source.Flush();
            return;
        }

        if ((dataOnly ? LibC.fdatasync((int)handle) : LibC.fsync((int)handle)) != 0)
        {
            throw ErrnoException.FromLastError("fsync");
        }
    }

    /// <inheritdoc/>
    public void Allocate(ulong handle, int mode, long offset, long length)
    {
        if (IsVirtual(handle))
        {
            throw new ErrnoException(Errno.EOPNOTSUPP, $"{_virtualHandles.Get(Slot(handle)).RelativePath}: fallocate on a virtual file");
        }

        if (ReadOnly)
        {
            throw new ErrnoException(Errno.EROFS, "fallocate on a read-only mount");
        }

        if (LibC.fallocate((int)handle, mode, offset, length) != 0)
        {
            throw ErrnoException.FromLastError("fallocate");
        }
    }

    /// <inheritdoc/>
    public long Seek(ulong handle, long offset, int whence)
    {
        if (!IsVirtual(handle))
        {
            long r = LibC.lseek((int)handle, offset, whence);
            return r >= 0 ? r : throw ErrnoException.FromLastError("lseek");
        }

        var source = _virtualHandles.Get(Slot(handle)).Source;
        long length = source.Length;
        if (whence != LibC.SEEK_DATA && whence != LibC.SEEK_HOLE)
        {
            throw new ErrnoException(Errno.EINVAL, $"lseek whence {whence} on a virtual file");
        }

        if (offset < 0)
        {
            throw new ErrnoException(Errno.EINVAL, "negative lseek offset");
        }

        if (offset >= length)
        {
            throw new ErrnoException(Errno.ENXIO, $"lseek at {offset} past the end ({length})");
        }

        long pos = offset;
        while (pos < length)
        {
            var e = source.GetExtent(pos, length - pos);
            if (e.Length <= 0)
            {
                throw new InvalidDataException($"{source.GetType().Name}.GetExtent returned an empty extent at {pos}");
            }

            bool data = e.Kind == ExtentKind.Data;
            if (data == (whence == LibC.SEEK_DATA))
            {
                return pos;
            }

            pos += e.Length;
        }

        return whence == LibC.SEEK_HOLE ? length : throw new ErrnoException(Errno.ENXIO, $"no data after {offset}");
    }

    private static int PassThroughFlags(int flags) =>
        (flags & ~(LibC.O_CREAT | LibC.O_EXCL | LibC.O_DIRECT)) | LibC.O_CLOEXEC;

    private static void RefuseVirtualResize(string path, long current, long requested)
    {
        if (requested != current)
        {
            throw new ErrnoException(Errno.EPERM, $"{path.ToString()}: a virtual file cannot be resized ({current} → {requested} bytes)");
        }
    }

    private VirtualFileInfo? ProbeVirtual(FusePath path, in Stat st)
    {
        if (_provider == null || (st.Mode & LibC.S_IFMT) != LibC.S_IFREG)
        {
            return null;
        }

        return _provider.Probe(_directory, path.RelativeString, UnderlyingFileStat.From(st));
    }

    private void OpenVirtual(FusePath path, in UnderlyingFileStat stat, VirtualFileInfo info, bool write, ref FuseFileInfo fi)
    {
        if ((fi.Flags & LibC.O_TRUNC) != 0)
        {
            throw new ErrnoException(Errno.EPERM, $"{path.ToString()}: a virtual file cannot be truncated");
        }

        int pathFd = LibC.openat(Dir, path.Relative, LibC.O_PATH | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
        if (pathFd < 0)
        {
            throw Failure("open", path);
        }

        IBlockSource? source = null;
        try
        {
            string relative = path.RelativeString;
            source = _provider!.Open(_directory, relative, stat, write);
            if (write && !source.CanWrite)
            {
                throw new ErrnoException(Errno.EROFS, $"{path.ToString()}: the virtual file is read-only");
            }

            int slot = _virtualHandles.Add(new VirtualFileHandle(source, write, pathFd, relative, info));
            fi.Fh = VirtualHandleBit | (uint)slot;
            fi.DirectIo = true;
        }
        catch
        {
            source?.Dispose();
            LibC.close(pathFd);
            throw;
        }
    }

    private static void ApplyVirtual(ref Stat st, in VirtualFileInfo info)
    {
        st.Size = info.Length;
        st.Blocks = (info.AllocatedBytes + 511) / 512;
        if (!info.Writable)
        {
            st.Mode &= ~0x92u; // clear the write bits (0222)
        }

        if (info.ModifiedUtc is { } m)
        {
            long ticks = m.ToUniversalTime().Ticks - DateTime.UnixEpoch.Ticks;
            st.ModifyTime.Seconds = ticks / TimeSpan.TicksPerSecond;
            st.ModifyTime.Nanoseconds = ticks % TimeSpan.TicksPerSecond * 100;
        }
    }
}
