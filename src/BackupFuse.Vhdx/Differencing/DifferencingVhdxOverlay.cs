using System.Buffers;
using System.Runtime.CompilerServices;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The writable disk: a differencing child over the read-only backup chain (Next). For every run the child
//   answers where it holds the sectors (GetExtent Data), the chain everywhere else (QEMU backing-file semantics,
//   the same rule as ChainSource).
// - Writes of any alignment: each request is cut at the child's payload blocks; inside a block the head and tail
//   that do not cover whole logical sectors are read-modify-written through the merged view (so the untouched bytes
//   of an edge sector come from the chain when the child does not hold it yet) and the body goes to the child as is.
// - Threading: one lock per block stripe (the child's payload block number) serializes writers of a block, so two
//   read-modify-writes of the same sector cannot lose each other's bytes, and an aligned body cannot be overwritten by
//   a concurrent edge RMW holding stale bytes. Reads take no lock. Lock order: overlay stripe -> child locks.
// - The chain may be shorter than the child by less than a sector (a disk length that is not a sector multiple):
//   the edge sector's bytes past the chain read as zeros, and the overlay's Length stays the chain's.
// - Flush flushes the child only (the chain is read-only). The overlay owns both.

/// <summary>A differencing VHDX child over the backup chain: merged reads, writes of any alignment into the child.</summary>
public sealed class DifferencingVhdxOverlay : BlockFilter
{
    private const int Stripes = 64;
    private readonly DifferencingVhdxFile _child;
    private readonly object[] _stripes;

    /// <summary>Layers <paramref name="child"/> over <paramref name="chain"/>; the overlay owns both.</summary>
    public DifferencingVhdxOverlay(IBlockSource chain, DifferencingVhdxFile child)
        : base(chain)
    {
        _child = child ?? throw new ArgumentNullException(nameof(child));
        if (child.Length < BlockAlignment.AlignUp(chain.Length, child.LogicalSectorSize) || child.Length - chain.Length >= child.PayloadBlockSize)
        {
            throw new ArgumentException($"{child.Path}: the child's virtual size {child.Length} does not fit the chain's {chain.Length} bytes");
        }

        _stripes = new object[Stripes];
        for (int i = 0; i < Stripes; i++)
        {
            _stripes[i] = new object();
        }
    }

    /// <summary>The differencing child.</summary>
    public DifferencingVhdxFile Child => _child;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            var e = _child.GetExtent(offset, buffer.Length);
            var piece = buffer[..(int)e.Length];
            if (e.Kind == ExtentKind.Data)
            {
                _child.Read(offset, piece);
            }
            else
            {
                Next.Read(offset, piece);
            }

            buffer = buffer[piece.Length..];
            offset += piece.Length;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var e = _child.GetExtent(offset, Math.Min(maxLength, Length - offset));
        return e.Kind == ExtentKind.Data ? e : Next.GetExtent(offset, e.Length);
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        AssertRange(offset, data.Length);
        int blockSize = _child.PayloadBlockSize;
        int sector = _child.LogicalSectorSize;
        Span<AlignedSegment> segments = stackalloc AlignedSegment[3];
        while (!data.IsEmpty)
        {
            long block = offset / blockSize;
            int n = (int)Math.Min(data.Length, ((block + 1) * blockSize) - offset);
            var piece = data[..n];
            lock (_stripes[block % Stripes])
            {
                int count = BlockAlignment.Split(offset, n, sector, segments);
                for (int i = 0; i < count; i++)
                {
                    var s = segments[i];
                    var bytes = piece.Slice(s.BufferOffset, s.Length);
                    if (s.IsAligned)
                    {
                        _child.Write(s.Offset, bytes);
                    }
                    else
                    {
                        WriteEdge(s.Offset, bytes, sector);
                    }
                }
            }

            data = data[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override void Flush() => _child.Flush();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            try
            {
                _child.Dispose();
            }
            finally
            {
                base.Dispose(disposing);
            }
        }
    }

    /// <summary>Read-modify-write of the one sector holding [offset, +bytes.Length) (caller holds the block's lock).</summary>
    private void WriteEdge(long offset, ReadOnlySpan<byte> bytes, int sector)
    {
        long start = BlockAlignment.AlignDown(offset, sector);
        var buffer = ArrayPool<byte>.Shared.Rent(sector);
        try
        {
            var image = buffer.AsSpan(0, sector);
            int readable = (int)Math.Min(sector, Length - start);
            Read(start, image[..readable]);
            image[readable..].Clear();
            bytes.CopyTo(image[(int)(offset - start)..]);
            _child.Write(start, image);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
