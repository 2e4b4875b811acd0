using System.Runtime.CompilerServices;
using BackupFuse.Core;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - An open virtual file: the IBlockSource the provider opened (owned: disposed at release; a provider shares one
//   source through a non-owning wrapper) and an O_PATH descriptor of the plugin file underneath, which answers
//   fstat and utimens (LibC.SetTimesPinned: /proc/self/fd/N on Linux, futimens elsewhere); chmod/chown are kept in memory by the mount's VirtualFileOwnership,
//   never applied to the plugin file (see there).
// - The rules of a virtual file: reads go straight into libfuse's buffer (no allocation; the file is opened
//   direct_io) and end in a short read at the source's length. A source that cannot change (CanWrite false) is read
//   one request ahead for a sequential reader (SequentialReadAhead: direct_io leaves no kernel read-ahead); such a
//   read is one copy out of the staging buffer. It never grows or shrinks (a write past the end is EFBIG, a truncate
//   to another size EPERM, fallocate EOPNOTSUPP); writes need a writable open (EROFS otherwise; a read-only mount
//   never makes one); SEEK_DATA/SEEK_HOLE follow GetExtent (Data is data, Zero and Unallocated are holes); flush
//   flushes a writable source, fsync any source.
// - getattr reports the plugin file's stat with the presented owner/mode (VirtualFileOwnership) and the provider's
//   VirtualFileInfo applied (ApplyInfo, shared with the path-based getattr), the size taken from the open source.
// - Thread-safe as far as the source is (IBlockSource sources are); Dispose runs once, at release.

/// <summary>An open virtual file: a block source plus the plugin file's O_PATH descriptor (see design notes).</summary>
internal sealed unsafe class VirtualFile(IBlockSource source, bool writable, int pathDescriptor, string relativePath, VirtualFileInfo info, VirtualFileOwnership ownership) : IOpenFile
{
    // Only a source that cannot change may be read ahead: nothing checks a staged range against a later write.
    private readonly SequentialReadAhead? _readAhead = source.CanWrite ? null : new SequentialReadAhead(source);

    /// <summary>The provider's source (owned).</summary>
    public IBlockSource Source { get; } = source;

    /// <summary>Whether the open asked for writing (the source can write then).</summary>
    public bool Writable { get; } = writable;

    /// <summary>The O_PATH descriptor of the plugin file (owned).</summary>
    public int PathDescriptor { get; } = pathDescriptor;

    /// <summary>The plugin file's path below the served directory, for messages.</summary>
    public string RelativePath { get; } = relativePath;

    /// <summary>What the provider said the file looks like when it was opened.</summary>
    public VirtualFileInfo Info { get; } = info;

    /// <summary>Makes the stat of a plugin file look like the virtual file <paramref name="info"/> describes.</summary>
    public static void ApplyInfo(ref Stat st, in VirtualFileInfo info)
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

    /// <summary>Refuses (EPERM) a truncation of a virtual file to any size but its own.</summary>
    public static void RefuseResize(string path, long current, long requested)
    {
        if (requested != current)
        {
            throw new ErrnoException(Errno.EPERM, $"{path}: a virtual file cannot be resized ({current} → {requested} bytes)");
        }
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Read(Span<byte> buffer, long offset)
    {
        long length = Source.Length;
        if (offset < 0)
        {
            throw new ErrnoException(Errno.EINVAL, "negative read offset");
        }

        if (offset >= length)
        {
            return 0;
        }

        int n = (int)Math.Min(buffer.Length, length - offset);
        var part = buffer[..n];
        bool served = _readAhead?.TryServe(offset, part) == true;
        if (!served)
        {
            Source.Read(offset, part);
        }

        _readAhead?.Completed(offset, n, served, length);
        return n;
    }

    /// <inheritdoc/>
    public int Write(ReadOnlySpan<byte> data, long offset)
    {
        if (!Writable)
        {
            throw new ErrnoException(Errno.EROFS, $"{RelativePath} is not open for writing");
        }

        if (offset < 0 || offset > Source.Length - data.Length)
        {
            throw new ErrnoException(Errno.EFBIG, $"{RelativePath}: write at {offset}+{data.Length} past the end of the virtual file ({Source.Length} bytes); virtual files do not grow");
        }

        Source.Write(offset, data);
        return data.Length;
    }

    /// <inheritdoc/>
    public void GetAttributes(FusePath path, ref Stat stat)
    {
        fixed (Stat* st = &stat)
        {
            DirectoryOverlayFileSystem.Check(LibC.fstat(PathDescriptor, st), "fstat", RelativePath);
        }

        ownership.Apply(ref stat);
        ApplyInfo(ref stat, Info with { Length = Source.Length });
    }

    /// <inheritdoc/>
    public void ChangeMode(FusePath path, uint mode) => ownership.SetMode(Underlying(), mode);

    /// <inheritdoc/>
    public void ChangeOwner(FusePath path, uint uid, uint gid) => ownership.SetOwner(Underlying(), uid, gid);

    private Stat Underlying()
    {
        Stat st;
        DirectoryOverlayFileSystem.Check(LibC.fstat(PathDescriptor, &st), "fstat", RelativePath);
        return st;
    }

    /// <inheritdoc/>
    public void SetTimes(FusePath path, in Timespec access, in Timespec modify)
    {
        Timespec* times = stackalloc Timespec[2];
        times[0] = access;
        times[1] = modify;
        DirectoryOverlayFileSystem.Check(LibC.SetTimesPinned(PathDescriptor, times), "utimens", path);
    }

    /// <inheritdoc/>
    public void Truncate(FusePath path, long length) => RefuseResize(RelativePath, Source.Length, length);

    /// <inheritdoc/>
    public void Flush()
    {
        if (Writable)
        {
            Source.Flush();
        }
    }

    /// <inheritdoc/>
    public void Sync(bool dataOnly) => Source.Flush();

    /// <inheritdoc/>
    public void Allocate(int mode, long offset, long length) =>
        throw new ErrnoException(Errno.EOPNOTSUPP, $"{RelativePath}: fallocate on a virtual file");

    /// <inheritdoc/>
    public long Seek(long offset, int whence)
    {
        long length = Source.Length;
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
            var e = Source.GetExtent(pos, length - pos);
            if (e.Length <= 0)
            {
                throw new InvalidDataException($"{Source.GetType().Name}.GetExtent returned an empty extent at {pos}");
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

    /// <summary>release: disposes the source and closes the O_PATH descriptor.</summary>
    public void Dispose()
    {
        try
        {
            _readAhead?.Dispose();
            Source.Dispose();
        }
        finally
        {
            LibC.close(PathDescriptor);
        }
    }
}
