using System.Buffers;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - The VMDK file of SparseVmdkLayout over a disk: [0, RewritableLength) header + descriptor from a RewritableRegion,
//   then directories/tables/padding computed by the layout, then the disk at DataOffset (grain i = disk bytes
//   i * 64 KiB on), then zeros for the last grain's part past the disk.
// - Writes: to the disk area they go to the disk at the same offset (every grain is allocated, so a VMDK writer never
//   touches a table for them); to the header or descriptor they are kept byte-exact by the region (QEMU rewrites the
//   descriptor's CID on its first write after every open; other writers may set the header's unclean-shutdown byte); to the
//   directories, tables, padding and the last grain's tail past the disk they are accepted only when they write the
//   bytes already there, and refused otherwise (NotSupportedException: a read-only region, EROFS at the FUSE
//   boundary), because those bytes are computed and must stay what the data layout is.
// - Non-owning; thread-safe as its parts are.

/// <summary>A monolithicSparse VMDK file over a disk, every grain allocated and laid out linearly.</summary>
public sealed class SparseVmdkView : BlockSource
{
    private readonly IBlockSource _disk;
    private readonly RewritableRegion _head;

    /// <summary>The VMDK over <paramref name="disk"/>, with the header and descriptor in <paramref name="head"/>.</summary>
    /// <param name="layout">The layout for the disk's size.</param>
    /// <param name="disk">The disk (not owned).</param>
    /// <param name="head">The header and descriptor (<see cref="SparseVmdkLayout.CreateHeaderAndDescriptor"/>).</param>
    public SparseVmdkView(SparseVmdkLayout layout, IBlockSource disk, RewritableRegion head)
    {
        Layout = layout ?? throw new ArgumentNullException(nameof(layout));
        _disk = disk ?? throw new ArgumentNullException(nameof(disk));
        _head = head ?? throw new ArgumentNullException(nameof(head));
        if (disk.Length != layout.DiskSize || head.Length != SparseVmdkLayout.RewritableLength)
        {
            throw new ArgumentException("the disk or the header region does not match the layout");
        }
    }

    /// <summary>The layout in use.</summary>
    public SparseVmdkLayout Layout { get; }

    /// <inheritdoc/>
    public override long Length => Layout.FileLength;

    /// <inheritdoc/>
    public override int BlockSize => _disk.BlockSize;

    /// <inheritdoc/>
    public override bool CanWrite => _disk.CanWrite;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            var (kind, end) = Locate(offset);
            int n = (int)Math.Min(buffer.Length, end - offset);
            var piece = buffer[..n];
            switch (kind)
            {
                case Part.Head:
                    _head.Read((int)offset, piece);
                    break;
                case Part.Tables:
                    Layout.ReadTables(offset, piece);
                    break;
                case Part.Disk:
                    _disk.Read(offset - Layout.DataOffset, piece);
                    break;
                default:
                    piece.Clear();
                    break;
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        AssertRange(offset, data.Length);
        if (!_disk.CanWrite)
        {
            throw new NotSupportedException("the VMDK is read-only");
        }

        while (!data.IsEmpty)
        {
            var (kind, end) = Locate(offset);
            int n = (int)Math.Min(data.Length, end - offset);
            var piece = data[..n];
            switch (kind)
            {
                case Part.Head:
                    _head.Write((int)offset, piece);
                    break;
                case Part.Disk:
                    _disk.Write(offset - Layout.DataOffset, piece);
                    break;
                default:
                    RefuseUnlessUnchanged(offset, piece, kind);
                    break;
            }

            data = data[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override void Flush()
    {
        _disk.Flush();
        _head.Flush();
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var (kind, end) = Locate(offset);
        long length = Math.Min(maxLength, end - offset);
        if (kind == Part.Disk)
        {
            var e = _disk.GetExtent(offset - Layout.DataOffset, length);
            return new Extent(offset, e.Length, e.Kind);
        }

        return new Extent(offset, length, kind == Part.Tail ? ExtentKind.Zero : ExtentKind.Data);
    }

    private (Part Kind, long End) Locate(long offset)
    {
        long diskEnd = Layout.DataOffset + Layout.DiskSize;
        return offset switch
        {
            < SparseVmdkLayout.RewritableLength => (Part.Head, SparseVmdkLayout.RewritableLength),
            _ when offset < Layout.DataOffset => (Part.Tables, Layout.DataOffset),
            _ when offset < diskEnd => (Part.Disk, diskEnd),
            _ => (Part.Tail, Layout.FileLength),
        };
    }

    private void RefuseUnlessUnchanged(long offset, ReadOnlySpan<byte> data, Part kind)
    {
        var current = ArrayPool<byte>.Shared.Rent(data.Length);
        try
        {
            var span = current.AsSpan(0, data.Length);
            if (kind == Part.Tables)
            {
                Layout.ReadTables(offset, span);
            }
            else
            {
                span.Clear();
            }

            if (!span.SequenceEqual(data))
            {
                throw new NotSupportedException($"write at {offset}+{data.Length} of the VMDK refused: its grain directories and tables are synthesized and read-only (every grain is allocated)");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(current);
        }
    }

    private enum Part
    {
        Head,
        Tables,
        Disk,
        Tail,
    }
}
