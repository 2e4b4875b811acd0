using BackupFuse.Blocks;

namespace BackupFuse.Vhdx;

// Design notes:
// - The VHDX file-offset space as a block source: each request is cut at the runs of the immutable
//   VhdxLayout (binary search, at most 8 runs). Structure bytes come from the layout's small buffer, BAT bytes are
//   computed, zero runs are cleared, and payload runs go straight to the disk source with a pure offset
//   translation into the caller's span (no bounce buffer, no copy).
// - All file -> disk arithmetic lives in TryMapToDisk / the Payload case of Read, so the write path (routing
//   payload writes to a differencing overlay, header/log writes to a metadata area) can be added in one place.
// - GetExtent: structure runs are Data, reserved space / empty log / padding are Zero, payload runs report the
//   disk's extent with Unallocated turned into Zero (this is the bottom of what the kernel sees: FUSE
//   SEEK_HOLE/SEEK_DATA and st_blocks are driven from it).
// - Thread-safe: no mutable state; the disk source must be thread-safe (IBlockSource contract).
// - Deliberately not done: writes (CanWrite is false), caching (a CacheFilter belongs below, on the disk).

/// <summary>A complete fixed-layout VHDX file computed on demand over a virtual disk.</summary>
public sealed class SynthesizedVhdx : BlockSource
{
    private readonly IBlockSource _disk;
    private readonly bool _ownsDisk;

    /// <summary>
    /// Presents <paramref name="disk"/> as a VHDX whose GUIDs derive from <paramref name="identity"/>.
    /// The VHDX owns the disk unless <paramref name="ownsDisk"/> is false.
    /// </summary>
    public SynthesizedVhdx(IBlockSource disk, Guid identity, VhdxLayoutOptions? options = null, bool ownsDisk = true)
    {
        _disk = disk ?? throw new ArgumentNullException(nameof(disk));
        _ownsDisk = ownsDisk;
        Layout = VhdxLayout.Create(disk.Length, identity, options);
    }

    /// <summary>The layout in use.</summary>
    public VhdxLayout Layout { get; }

    /// <summary>The virtual disk below.</summary>
    public IBlockSource Disk => _disk;

    /// <summary>DataWriteGuid of the headers (the parent_linkage a differencing child names).</summary>
    public Guid DataWriteGuid => Layout.DataWriteGuid;

    /// <inheritdoc/>
    public override long Length => Layout.FileLength;

    /// <inheritdoc/>
    public override int BlockSize => 4096;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        var extents = Layout.Extents;
        int index = buffer.IsEmpty ? 0 : Layout.FindExtent(offset);
        while (!buffer.IsEmpty)
        {
            var e = extents[index];
            long within = offset - e.FileOffset;
            int n = (int)Math.Min(buffer.Length, e.Length - within);
            var piece = buffer[..n];
            switch (e.Kind)
            {
                case LayoutExtentKind.Bytes:
                    Layout.ReadBytes(e.SourceOffset + within, piece);
                    break;
                case LayoutExtentKind.Bat:
                    Layout.ReadBat(e.SourceOffset + within, piece);
                    break;
                case LayoutExtentKind.Payload:
                    _disk.Read(e.SourceOffset + within, piece);
                    break;
                default:
                    piece.Clear();
                    break;
            }

            buffer = buffer[n..];
            offset += n;
            index++;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var e = Layout.Extents[Layout.FindExtent(offset)];
        long length = Math.Min(Math.Min(maxLength, Length - offset), e.End - offset);
        switch (e.Kind)
        {
            case LayoutExtentKind.Payload:
                var d = _disk.GetExtent(e.SourceOffset + (offset - e.FileOffset), length);
                return new Extent(offset, d.Length, d.Kind == ExtentKind.Data ? ExtentKind.Data : ExtentKind.Zero);
            case LayoutExtentKind.Zero:
                return new Extent(offset, length, ExtentKind.Zero);
            default:
                return new Extent(offset, length, ExtentKind.Data);
        }
    }

    /// <summary>
    /// Maps a file offset to the disk: true when <paramref name="fileOffset"/> lies in payload that the disk
    /// backs, with the disk offset and how many bytes from there stay in the same payload run.
    /// </summary>
    public bool TryMapToDisk(long fileOffset, out long diskOffset, out long runLength)
    {
        diskOffset = 0;
        runLength = 0;
        if (fileOffset < 0 || fileOffset >= Length)
        {
            return false;
        }

        var e = Layout.Extents[Layout.FindExtent(fileOffset)];
        if (e.Kind != LayoutExtentKind.Payload)
        {
            return false;
        }

        diskOffset = e.SourceOffset + (fileOffset - e.FileOffset);
        runLength = e.End - fileOffset;
        return true;
    }

    /// <summary>File offset of disk byte <paramref name="diskOffset"/> (the inverse of <see cref="TryMapToDisk"/>).</summary>
    public long MapToFile(long diskOffset) => Layout.PayloadOffset + diskOffset;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsDisk)
        {
            _disk.Dispose();
        }
    }
}
