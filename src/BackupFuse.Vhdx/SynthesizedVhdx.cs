using System.Runtime.CompilerServices;
using System.Buffers;
using BackupFuse.Core;

namespace BackupFuse.Vhdx;

// Design notes:
// - The VHDX file-offset space as a block source: each request is cut at the runs of the immutable
//   VhdxLayout (binary search, at most 8 runs). Structure bytes come from the layout's small buffer, BAT bytes are
//   computed, zero runs are cleared, and payload runs go straight to the disk source with a pure offset
//   translation into the caller's span (no bounce buffer, no copy).
// - All file -> disk arithmetic lives in TryMapToDisk / the Payload case of Read; the write path (Writable mode
//   below) maps payload writes through the same TryMapToDisk, so reads and writes never disagree on an offset.
// - GetExtent: structure runs are Data, reserved space / empty log / padding are Zero, payload runs report the
//   disk's extent with Unallocated turned into Zero (this is the bottom of what the kernel sees: FUSE
//   SEEK_HOLE/SEEK_DATA and st_blocks are driven from it).
// - Thread-safe: no mutable state; the disk source must be thread-safe (IBlockSource contract).
// - Two modes. Pristine (the first constructor): read-only, CanWrite false, exactly the bytes of the layout; this is
//   what a differencing child's parent (the ".base.vhdx" view) must be, since its DataWriteGuid may never change.
//   Writable (the constructor with an ISynthesizedPatchStore, over a writable disk such as DifferencingVhdxOverlay):
//   writes into payload runs are translated to disk offsets (TryMapToDisk) and go to the disk; writes anywhere else
//   (QEMU rewriting both headers, a hypervisor writing the log area, bytes past the end) go to the patch store as
//   4 KiB pages, and reads of non-payload runs put the patched pages over the synthesized bytes. A write past the
//   end grows the logical length (kept in the patch store, so it survives restarts). Payload bytes are never
//   patched: they live in the disk only, so the two stores never disagree about a byte.
// - Deliberately not done: caching (a CacheFilter belongs below, on the disk), shrinking the file.

/// <summary>A complete fixed-layout VHDX file computed on demand over a virtual disk.</summary>
public sealed class SynthesizedVhdx : BlockSource
{
    private readonly IBlockSource _disk;
    private readonly bool _ownsDisk;
    private readonly ISynthesizedPatchStore? _patches;

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

    /// <summary>
    /// Presents <paramref name="disk"/> (writable, e.g. a Differencing.DifferencingVhdxOverlay) as a WRITABLE VHDX:
    /// payload writes go to the disk, all other writes to <paramref name="patches"/>.
    /// </summary>
    public SynthesizedVhdx(IBlockSource disk, Guid identity, ISynthesizedPatchStore patches, VhdxLayoutOptions? options = null, bool ownsDisk = true)
        : this(disk, identity, options, ownsDisk)
    {
        _patches = patches ?? throw new ArgumentNullException(nameof(patches));
        if (!disk.CanWrite)
        {
            throw new ArgumentException("a writable synthesized VHDX needs a writable disk", nameof(disk));
        }
    }

    /// <summary>The patch store of the writable mode, else null.</summary>
    public ISynthesizedPatchStore? Patches => _patches;

    /// <summary>The layout in use.</summary>
    public VhdxLayout Layout { get; }

    /// <summary>The virtual disk below.</summary>
    public IBlockSource Disk => _disk;

    /// <summary>DataWriteGuid of the headers (the parent_linkage a differencing child names).</summary>
    public Guid DataWriteGuid => Layout.DataWriteGuid;

    /// <inheritdoc/>
    public override long Length => _patches is null ? Layout.FileLength : Math.Max(Layout.FileLength, _patches.LogicalLength);

    /// <inheritdoc/>
    public override int BlockSize => 4096;

    /// <inheritdoc/>
    public override bool CanWrite => _patches is not null;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        if (_patches is not null && offset + buffer.Length > Layout.FileLength)
        {
            // The part a writer appended: zeros under its patches.
            long from = Math.Max(offset, Layout.FileLength);
            var past = buffer[(int)(from - offset)..];
            past.Clear();
            _patches.Overlay(from, past);
            buffer = buffer[..(int)(from - offset)];
        }

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

            if (_patches is not null && e.Kind != LayoutExtentKind.Payload)
            {
                _patches.Overlay(offset, piece);
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
        if (_patches is not null)
        {
            return GetPatchedExtent(offset, maxLength);
        }

        return GetLayoutExtent(offset, maxLength);
    }

    /// <summary>
    /// Stores <paramref name="data"/> (writable mode only): payload bytes go to the disk, all other bytes to the patch
    /// store. A write past <see cref="Length"/> extends the file.
    /// </summary>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (_patches is null)
        {
            base.Write(offset, data);
            return;
        }

        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        long end = offset + data.Length;
        long payloadEnd = Layout.PayloadOffset + Layout.DiskLength;
        while (!data.IsEmpty)
        {
            int n;
            if (TryMapToDisk(offset, out long diskOffset, out long run))
            {
                n = (int)Math.Min(data.Length, run);
                _disk.Write(diskOffset, data[..n]);
            }
            else
            {
                n = offset < Layout.PayloadOffset ? (int)Math.Min(data.Length, Layout.PayloadOffset - offset) : data.Length;
                WritePatch(offset, data[..n]);
            }

            data = data[n..];
            offset += n;
        }

        if (end > Layout.FileLength)
        {
            _patches.GrowLogicalLength(end);
        }
    }

    /// <inheritdoc/>
    public override void Flush()
    {
        if (_patches is not null)
        {
            _disk.Flush();
            _patches.Flush();
        }
    }

    private Extent GetPatchedExtent(long offset, long maxLength)
    {
        long end = Math.Min(Length, offset + Math.Min(maxLength, Length - offset));
        Extent baseExtent;
        if (offset >= Layout.FileLength)
        {
            baseExtent = new Extent(offset, end - offset, ExtentKind.Zero);
        }
        else
        {
            baseExtent = GetLayoutExtent(offset, end - offset);
            if (Layout.Extents[Layout.FindExtent(offset)].Kind == LayoutExtentKind.Payload)
            {
                return baseExtent;
            }
        }

        long patch = _patches!.FindNextPatch(offset, baseExtent.End);
        if (patch < 0)
        {
            return baseExtent;
        }

        return patch <= offset
            ? new Extent(offset, Math.Min(baseExtent.End, patch + ISynthesizedPatchStore.PageSize) - offset, ExtentKind.Data)
            : baseExtent with { Length = patch - offset };
    }

    /// <summary>Hands a non-payload write to the patch store with the unpatched bytes of the pages it touches.</summary>
    private void WritePatch(long offset, ReadOnlySpan<byte> data)
    {
        int length = ISynthesizedPatchStore.UnpatchedPagesLength(offset, data.Length);
        var unpatched = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            ReadUnpatched(BlockAlignment.AlignDown(offset, ISynthesizedPatchStore.PageSize), unpatched.AsSpan(0, length));
            _patches!.Write(offset, data, unpatched.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(unpatched);
        }
    }

    /// <summary>The synthesized bytes of whole 4 KiB pages without patches (payload bytes are left zero: they are never patched).</summary>
    private void ReadUnpatched(long pageOffset, Span<byte> page)
    {
        page.Clear();
        long end = Math.Min(pageOffset + page.Length, Layout.FileLength);
        var extents = Layout.Extents;
        for (long pos = pageOffset; pos < end;)
        {
            var e = extents[Layout.FindExtent(pos)];
            int n = (int)Math.Min(end - pos, e.End - pos);
            var piece = page.Slice((int)(pos - pageOffset), n);
            if (e.Kind == LayoutExtentKind.Bytes)
            {
                Layout.ReadBytes(e.SourceOffset + (pos - e.FileOffset), piece);
            }
            else if (e.Kind == LayoutExtentKind.Bat)
            {
                Layout.ReadBat(e.SourceOffset + (pos - e.FileOffset), piece);
            }

            pos += n;
        }
    }

    private Extent GetLayoutExtent(long offset, long maxLength)
    {
        var e = Layout.Extents[Layout.FindExtent(offset)];
        long length = Math.Min(Math.Min(maxLength, Layout.FileLength - offset), e.End - offset);
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
        if (fileOffset < 0 || fileOffset >= Layout.FileLength)
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
