using System.Buffers.Binary;
using BackupFuse.Core;
using BackupFuse.Core.Partitions;
using BackupFuse.Testing;

namespace BackupFuse.Core.Tests;

/// <summary>The synthesized partitioned disk: GPT structures (checked field by field and by CRC), MBR, offset mapping.</summary>
public sealed class PartitionedDiskSourceTests
{
    private const long MiB = 1024 * 1024;
    private static readonly Guid DiskGuid = new("11111111-2222-3333-4444-555555555555");

    private static PartitionSpec Spec(long length, int n) =>
        new(length, PartitionTypes.LinuxFileSystem, new Guid(n, 0, 0, new byte[8]), PartitionTypes.MbrLinux, $"vol {n}");

    [Fact]
    public void GptHeadersAndEntriesAreConsistentAndCrcChecked()
    {
        var layout = PartitionedDiskLayout.Create([Spec(3 * MiB + 1000, 1), Spec(5 * MiB, 2)], DiskGuid, PartitionTableKind.Gpt);
        Assert.Equal([1 * MiB, 5 * MiB], layout.PartitionOffsets);
        Assert.Equal(11 * MiB, layout.Length);
        using var disk = new PartitionedDiskSource(layout, [new MemorySource(new byte[3 * MiB + 1000]), new MemorySource(new byte[5 * MiB])]);
        byte[] all = new byte[disk.Length];
        disk.Read(0, all);
        long lastLba = (all.Length / 512) - 1;
        Assert.Equal(0xEE, all[446 + 4]);
        Assert.Equal(0xAA55, BinaryPrimitives.ReadUInt16LittleEndian(all.AsSpan(510)));
        foreach (long at in new[] { 512L, lastLba * 512 })
        {
            var h = all.AsSpan((int)at, 92).ToArray();
            Assert.True(h.AsSpan(0, 8).SequenceEqual("EFI PART"u8));
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(16));
            h.AsSpan(16, 4).Clear();
            Assert.Equal(crc, Crc32.Compute(h));
            long entriesLba = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(72));
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(88)), Crc32.Compute(all.AsSpan((int)(entriesLba * 512), 128 * 128)));
            Assert.Equal(at / 512, BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(24)));
            Assert.Equal(DiskGuid, new Guid(h.AsSpan(56, 16)));
        }

        var e2 = all.AsSpan(1024 + 128, 128);
        Assert.Equal(5 * MiB / 512, BinaryPrimitives.ReadInt64LittleEndian(e2[32..]));
        Assert.Equal((10 * MiB / 512) - 1, BinaryPrimitives.ReadInt64LittleEndian(e2[40..]));
        // Partition 1 ends on the sector that holds its last byte (3 MiB + 1000 bytes = 6144 + 2 sectors).
        Assert.Equal((1 * MiB / 512) + 6144 + 1, BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(1024 + 40)));
    }

    [Fact]
    public void KnownCrc32Vector() => Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));

    [Fact]
    public void ReadsAcrossRegionsMapVolumeBytesAndZeros()
    {
        byte[] v1 = new byte[(2 * MiB) + 100];
        byte[] v2 = new byte[MiB];
        new Random(5).NextBytes(v1);
        new Random(6).NextBytes(v2);
        var layout = PartitionedDiskLayout.Create([Spec(v1.Length, 1), Spec(v2.Length, 2)], DiskGuid, PartitionTableKind.Mbr);
        using var disk = new PartitionedDiskSource(layout, [new MemorySource(v1), new MemorySource(v2)]);
        byte[] expected = new byte[disk.Length];
        disk.Read(0, expected.AsSpan(0, 512)); // the table, checked below
        v1.CopyTo(expected, MiB);
        v2.CopyTo(expected, 4 * MiB);
        var rng = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            long offset = rng.NextInt64(disk.Length);
            int length = (int)Math.Min(disk.Length - offset, rng.Next(1, 3 * 1024 * 1024));
            byte[] got = new byte[length];
            disk.Read(offset, got);
            Assert.True(got.AsSpan().SequenceEqual(expected.AsSpan((int)offset, length)), $"read {offset}+{length}");
        }

        Assert.Equal(0x83, expected[446 + 4]);
        Assert.Equal(2048u, BinaryPrimitives.ReadUInt32LittleEndian(expected.AsSpan(446 + 8)));
        Assert.Equal(4 * MiB / 512, BinaryPrimitives.ReadUInt32LittleEndian(expected.AsSpan(446 + 16 + 8)));
        Assert.Equal(ExtentKind.Zero, disk.GetExtent(512, 4096).Kind);
        Assert.Equal(new Extent((3 * MiB) + 100, MiB - 100, ExtentKind.Zero), disk.GetExtent((3 * MiB) + 100, disk.Length));
    }

    [Fact]
    public void ReadsPartCheaplyAsksTheVolumeAtItsOwnOffset_StructuresAndGapsAreCheap()
    {
        // The block cache above asks this to decide what it may read around itself: a partitioned disk must pass the
        // question to the volume, translated, or its plain volumes would never count as cheap.
        var layout = PartitionedDiskLayout.Create([Spec(2 * MiB, 1), Spec(MiB, 2)], DiskGuid, PartitionTableKind.Mbr);
        var asked = new List<(long Offset, int Length)>();
        var v1 = new AskingSource(new MemorySource(new byte[2 * MiB]), asked, answer: true);
        var v2 = new AskingSource(new MemorySource(new byte[MiB]), asked, answer: false);
        using var disk = new PartitionedDiskSource(layout, [v1, v2]);
        long p1 = layout.PartitionOffsets[0], p2 = layout.PartitionOffsets[1];
        Assert.Equal(MiB, p1);
        Assert.True(p2 >= p1 + (2 * MiB));
        Assert.True(disk.ReadsPartCheaply(0, 512)); // the MBR, in memory
        Assert.True(disk.ReadsPartCheaply(p1 + 65536, 65536)); // volume 1 says so
        Assert.Equal((65536L, 65536), asked[^1]);
        Assert.False(disk.ReadsPartCheaply(p2 + 8192, 4096)); // volume 2 says not
        Assert.Equal((8192L, 4096), asked[^1]);
        int before = asked.Count;
        Assert.False(disk.ReadsPartCheaply(p1 + (2 * MiB) - 4096, 8192)); // across the end of volume 1: never
        Assert.True(disk.ReadsPartCheaply(p2 + MiB, 4096)); // after the last volume: zeros
        Assert.Equal(before, asked.Count); // neither was a volume's question
    }

    [Fact]
    public void MoreThanFourVolumesNeedGpt()
    {
        var specs = Enumerable.Range(1, 5).Select(i => Spec(MiB, i)).ToList();
        Assert.Contains("use GPT", Assert.Throws<InvalidDataException>(() => PartitionedDiskLayout.Create(specs, DiskGuid, PartitionTableKind.Mbr)).Message, StringComparison.Ordinal);
        Assert.Equal(7 * MiB, PartitionedDiskLayout.Create(specs, DiskGuid, PartitionTableKind.Gpt).Length);
    }
}

/// <summary>Records what it is asked by ReadsPartCheaply and gives a fixed answer.</summary>
internal sealed class AskingSource(IBlockSource next, List<(long Offset, int Length)> asked, bool answer) : BlockFilter(next)
{
    public override bool ReadsPartCheaply(long offset, int length)
    {
        asked.Add((offset, length));
        return answer;
    }
}
