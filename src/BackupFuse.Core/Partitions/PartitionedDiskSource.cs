using System.Diagnostics;

namespace BackupFuse.Core.Partitions;

// Design notes:
// - A read-only disk made of a partition table (PartitionedDiskLayout's precomputed structures), zeros, and volume
//   sources mapped at their partition offsets (volume-to-disk offset translation, like nbdkit's partition filter in
//   reverse). A read is split at region boundaries; each part is copied from a structure, zeroed, or forwarded to
//   the volume at (disk offset - partition offset). The rounded-up sector tail of a volume reads as zeros.
// - Writes are not served here: the differencing layer above takes every guest write, partition table and gaps
//   included, so a guest can repartition; the volumes below are never written.
// - GetExtent: structures are Data, gaps and sector tails Zero, a volume's extents are its own (translated), so the
//   VHDX above marks the free space of a used-blocks backup as unallocated.
// - Thread-safe as far as the volumes are (read-only state of its own). Owns the volumes.

/// <summary>A disk synthesized from volumes: partition table + volumes at their partition offsets.</summary>
public sealed class PartitionedDiskSource : BlockSource
{
    private readonly PartitionedDiskLayout _layout;
    private readonly IBlockSource[] _volumes;

    /// <summary>The disk of <paramref name="layout"/> over <paramref name="volumes"/> (one per partition, in order; owned).</summary>
    public PartitionedDiskSource(PartitionedDiskLayout layout, IReadOnlyList<IBlockSource> volumes)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(volumes);
        if (volumes.Count != layout.PartitionOffsets.Count)
        {
            throw new ArgumentException($"{volumes.Count} volumes for {layout.PartitionOffsets.Count} partitions", nameof(volumes));
        }

        for (int i = 0; i < volumes.Count; i++)
        {
            if (volumes[i].Length != layout.PartitionLengths[i])
            {
                throw new ArgumentException($"volume {i + 1} has {volumes[i].Length} bytes, the layout {layout.PartitionLengths[i]}", nameof(volumes));
            }
        }

        _layout = layout;
        _volumes = [.. volumes];
    }

    /// <inheritdoc/>
    public override long Length => _layout.Length;

    /// <inheritdoc/>
    public override int BlockSize => PartitionedDiskLayout.SectorSize;

    /// <summary>The layout (where the partitions are).</summary>
    public PartitionedDiskLayout Layout => _layout;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            var region = Find(offset, buffer.Length);
            int n = (int)region.Length;
            var part = buffer[..n];
            switch (region.Kind)
            {
                case RegionKind.Structure:
                    var (start, bytes) = _layout.Structures[region.Index];
                    bytes.AsSpan((int)(offset - start), n).CopyTo(part);
                    break;
                case RegionKind.Volume:
                    _volumes[region.Index].Read(offset - _layout.PartitionOffsets[region.Index], part);
                    break;
                default:
                    part.Clear();
                    break;
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var region = Find(offset, Math.Min(maxLength, Length - offset));
        switch (region.Kind)
        {
            case RegionKind.Structure:
                return new Extent(offset, region.Length, ExtentKind.Data);
            case RegionKind.Volume:
                long at = offset - _layout.PartitionOffsets[region.Index];
                var e = _volumes[region.Index].GetExtent(at, region.Length);
                return new Extent(offset, e.Length, e.Kind);
            default:
                return new Extent(offset, region.Length, ExtentKind.Zero);
        }
    }

    /// <inheritdoc/>
    public override bool ReadsPartCheaply(long offset, int length)
    {
        AssertRange(offset, length);
        var region = Find(offset, length);
        return region.Length >= length && region.Kind switch
        {
            RegionKind.Volume => _volumes[region.Index].ReadsPartCheaply(offset - _layout.PartitionOffsets[region.Index], length),
            _ => true, // synthesized structures are in memory; gaps are zeros
        };
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var v in _volumes)
            {
                v.Dispose();
            }
        }
    }

    /// <summary>The region that contains <paramref name="offset"/>, cut to at most <paramref name="max"/> bytes.</summary>
    private Region Find(long offset, long max)
    {
        long end = offset + max;
        var structures = _layout.Structures;
        for (int i = 0; i < structures.Count; i++)
        {
            var (s, bytes) = structures[i];
            if (offset >= s && offset < s + bytes.Length)
            {
                return new Region(RegionKind.Structure, i, Math.Min(end, s + bytes.Length) - offset);
            }

            if (s > offset)
            {
                end = Math.Min(end, s);
                break;
            }
        }

        var offsets = _layout.PartitionOffsets;
        for (int i = 0; i < offsets.Count; i++)
        {
            long p = offsets[i];
            long volumeEnd = p + _layout.PartitionLengths[i];
            if (offset >= p && offset < volumeEnd)
            {
                return new Region(RegionKind.Volume, i, Math.Min(end, volumeEnd) - offset);
            }

            if (p > offset)
            {
                end = Math.Min(end, p);
                break;
            }
        }

        Debug.Assert(end > offset, "a region is never empty");
        return new Region(RegionKind.Zero, -1, end - offset);
    }

    private enum RegionKind
    {
        Zero,
        Structure,
        Volume,
    }

    private readonly record struct Region(RegionKind Kind, int Index, long Length);
}
