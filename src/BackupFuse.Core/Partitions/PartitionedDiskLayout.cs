using System.Buffers.Binary;

namespace BackupFuse.Core.Partitions;

// Design notes:
// - The geometry of a disk assembled from volumes: partition 1 at 1 MiB, each next partition at the next 1 MiB
//   boundary after the previous one, and 1 MiB after the last (rounded up to 1 MiB), which holds the backup GPT.
//   A partition spans its volume rounded up to whole 512-byte sectors; the rounded-up tail reads as zeros.
// - Everything that is not a partition is either a table structure (precomputed bytes: MBR, GPT headers and entry
//   arrays) or zeros. The structures are few and small (at most 33 KiB), so they are kept as byte arrays.
// - Immutable after Create; shared freely between threads.

/// <summary>Where each partition and each table structure lies on a synthesized partitioned disk.</summary>
public sealed class PartitionedDiskLayout
{
    /// <summary>Logical sector size of the synthesized disk.</summary>
    public const int SectorSize = 512;

    /// <summary>Partition alignment (and the gap before partition 1).</summary>
    public const long Alignment = 1024 * 1024;

    private PartitionedDiskLayout(long length, long[] offsets, long[] lengths, (long Offset, byte[] Bytes)[] structures)
    {
        Length = length;
        PartitionOffsets = offsets;
        PartitionLengths = lengths;
        Structures = structures;
    }

    /// <summary>Size of the disk in bytes (a multiple of 1 MiB).</summary>
    public long Length { get; }

    /// <summary>Byte offset of each partition on the disk.</summary>
    public IReadOnlyList<long> PartitionOffsets { get; }

    /// <summary>Bytes of each partition's volume (the partition itself is this rounded up to a sector).</summary>
    public IReadOnlyList<long> PartitionLengths { get; }

    /// <summary>Table structures (offset on the disk, bytes), sorted by offset, not overlapping.</summary>
    public IReadOnlyList<(long Offset, byte[] Bytes)> Structures { get; }

    /// <summary>Where partition 1 starts.</summary>
    public const long FirstPartitionOffset = Alignment;

    /// <summary>Where the partition after one of <paramref name="length"/> bytes at <paramref name="offset"/> starts.</summary>
    public static long NextPartitionOffset(long offset, long length) => RoundUp(offset + length, Alignment);

    /// <summary>Lays out <paramref name="partitions"/> in order under a table of <paramref name="kind"/>.</summary>
    /// <exception cref="InvalidDataException">No partition, an empty one, or more than the table holds.</exception>
    public static PartitionedDiskLayout Create(IReadOnlyList<PartitionSpec> partitions, Guid diskGuid, PartitionTableKind kind)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (partitions.Count == 0)
        {
            throw new InvalidDataException("a disk needs at least one volume");
        }

        var offsets = new long[partitions.Count];
        var lengths = new long[partitions.Count];
        long next = FirstPartitionOffset;
        for (int i = 0; i < partitions.Count; i++)
        {
            if (partitions[i].Length <= 0)
            {
                throw new InvalidDataException($"volume {i + 1} is empty");
            }

            offsets[i] = next;
            lengths[i] = partitions[i].Length;
            next = NextPartitionOffset(next, partitions[i].Length);
        }

        long length = next + Alignment;
        long sectors = length / SectorSize;
        long lastLba = sectors - 1;
        var ranges = new List<(PartitionSpec, long, long)>();
        for (int i = 0; i < partitions.Count; i++)
        {
            long first = offsets[i] / SectorSize;
            ranges.Add((partitions[i], first, first + (RoundUp(lengths[i], SectorSize) / SectorSize) - 1));
        }

        (long, byte[])[] structures;
        if (kind == PartitionTableKind.Mbr)
        {
            uint signature = BinaryPrimitives.ReadUInt32LittleEndian(diskGuid.ToByteArray());
            var mbr = ClassicMbr.Create([.. ranges.Select(r => (r.Item2, r.Item3 - r.Item2 + 1, r.Item1.MbrType))], signature == 0 ? 1u : signature);
            structures = [(0, mbr)];
        }
        else
        {
            byte[] entries = GptWriter.Entries(ranges);
            long backupEntriesLba = lastLba - GptWriter.EntrySectors;
            structures =
            [
                (0, ProtectiveMbr.Create(sectors)),
                (SectorSize, GptWriter.Header(1, lastLba, lastLba, 2, diskGuid, entries)),
                (2 * SectorSize, entries),
                (backupEntriesLba * SectorSize, entries),
                (lastLba * SectorSize, GptWriter.Header(lastLba, 1, lastLba, backupEntriesLba, diskGuid, entries)),
            ];
        }

        return new PartitionedDiskLayout(length, offsets, lengths, structures);
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;
}
