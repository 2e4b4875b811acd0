using System.Runtime.CompilerServices;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - An open underlying file: the descriptor openat() returned (flags passed through except O_DIRECT, whose alignment
//   rules libfuse's buffers do not meet; see DirectoryOverlayFileSystem). Every operation is the matching libc call on
//   that descriptor, and its errno is what FUSE answers.
// - read/write go through one loop (Transfer): pread/pwrite until the request is done, retrying EINTR; a read stops
//   at end of file (0), a write never returns short.
// - Read-only mounts: opens for writing are refused before a PassThroughFile exists, so writes fail in the kernel
//   (EBADF on the O_RDONLY descriptor); fallocate answers EROFS here, as the mount would. Where the platform has no
//   fallocate (macOS) LibC.fallocate answers EOPNOTSUPP, which FUSE clients take as "not offered".
// - Thread-safe: positional I/O only (the descriptor's offset is used by lseek alone). Dispose closes the
//   descriptor once.

/// <summary>An open pass-through file: a descriptor of the underlying file (see design notes).</summary>
internal sealed unsafe class PassThroughFile(int descriptor, bool readOnlyMount) : IOpenFile
{
    private int _fd = descriptor;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Read(Span<byte> buffer, long offset)
    {
        fixed (byte* b = buffer)
        {
            return Transfer(b, buffer.Length, offset, write: false);
        }
    }

    /// <inheritdoc/>
    public int Write(ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* b = data)
        {
            return Transfer(b, data.Length, offset, write: true);
        }
    }

    /// <inheritdoc/>
    public void GetAttributes(FusePath path, ref Stat stat)
    {
        fixed (Stat* st = &stat)
        {
            DirectoryOverlayFileSystem.Check(LibC.fstat(_fd, st), "fstat", path);
        }
    }

    /// <inheritdoc/>
    public void ChangeMode(FusePath path, uint mode) =>
        DirectoryOverlayFileSystem.Check(LibC.fchmod(_fd, mode & 0xFFF), "chmod", path);

    /// <inheritdoc/>
    public void ChangeOwner(FusePath path, uint uid, uint gid)
    {
        DirectoryOverlayFileSystem.Check(LibC.ChownPinned(_fd, uid, gid), "chown", path);
    }

    /// <inheritdoc/>
    public void SetTimes(FusePath path, in Timespec access, in Timespec modify)
    {
        Timespec* times = stackalloc Timespec[2];
        times[0] = access;
        times[1] = modify;
        DirectoryOverlayFileSystem.Check(LibC.futimens(_fd, times), "utimens", path);
    }

    /// <inheritdoc/>
    public void Truncate(FusePath path, long length) =>
        DirectoryOverlayFileSystem.Check(LibC.ftruncate(_fd, length), "truncate", path);

    /// <inheritdoc/>
    public void Flush()
    {
        // Like close(2) of the caller's descriptor: releases POSIX locks and reports delayed write errors.
        int dup = LibC.dup(_fd);
        if (dup < 0 || LibC.close(dup) != 0)
        {
            throw ErrnoException.FromLastError("flush");
        }
    }

    /// <inheritdoc/>
    public void Sync(bool dataOnly)
    {
        if ((dataOnly ? LibC.fdatasync(_fd) : LibC.fsync(_fd)) != 0)
        {
            throw ErrnoException.FromLastError("fsync");
        }
    }

    /// <inheritdoc/>
    public void Allocate(int mode, long offset, long length)
    {
        if (readOnlyMount)
        {
            throw new ErrnoException(Errno.EROFS, "fallocate on a read-only mount");
        }

        if (LibC.fallocate(_fd, mode, offset, length) != 0)
        {
            throw ErrnoException.FromLastError("fallocate");
        }
    }

    /// <inheritdoc/>
    public long Seek(long offset, int whence)
    {
        long r = LibC.lseek(_fd, offset, whence);
        return r >= 0 ? r : throw ErrnoException.FromLastError("lseek");
    }

    /// <summary>release: closes the descriptor.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            LibC.close(fd);
        }
    }

    /// <summary>pread/pwrite of <paramref name="length"/> bytes until done (EINTR retried); a read stops at end of file.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int Transfer(byte* buffer, int length, long offset, bool write)
    {
        int done = 0;
        while (done < length)
        {
            nint n = write
                ? LibC.pwrite(_fd, buffer + done, (nuint)(length - done), offset + done)
                : LibC.pread(_fd, buffer + done, (nuint)(length - done), offset + done);
            if (n < 0)
            {
                var e = ErrnoException.FromLastError(write ? "write" : "read");
                if (e.Errno == Errno.EINTR)
                {
                    continue;
                }

                throw e;
            }

            if (n == 0 && !write)
            {
                break; // end of file
            }

            done += (int)n;
        }

        return done;
    }
}
