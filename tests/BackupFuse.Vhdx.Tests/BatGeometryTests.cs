using BackupFuse.Core;
using BackupFuse.Vhdx.Differencing;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

/// <summary>BatGeometry against the numbers of MS-VHDX 2.5 (and the v1.00 entry formulas QEMU applies).</summary>
public sealed class BatGeometryTests
{
    private const long MiB = 1L << 20;
    private const long GiB = 1L << 30;

    [Theory]
    [InlineData(512, 1 * MiB, 4096L)]
    [InlineData(512, 2 * MiB, 2048L)]
    [InlineData(512, 8 * MiB, 512L)]
    [InlineData(512, 32 * MiB, 128L)]
    [InlineData(512, 256 * MiB, 16L)]
    [InlineData(4096, 1 * MiB, 32768L)]
    [InlineData(4096, 32 * MiB, 1024L)]
    [InlineData(4096, 256 * MiB, 128L)]
    public void ChunkRatioIsTheSectorsOfOneBitmapOverTheBlock(int logicalSector, long blockSize, long chunkRatio)
    {
        var g = new BatGeometry(1 * GiB, (int)blockSize, logicalSector, hasParent: false);
        Assert.Equal(chunkRatio, g.ChunkRatio);

        // One bitmap covers one chunk: ChunkRatio blocks of BlockSize / LogicalSectorSize bits each = 2^23 bits = 1 MiB.
        Assert.Equal(blockSize / logicalSector / 8, g.SectorBitmapBytesPerBlock);
        Assert.Equal(MiB, g.SectorBitmapBytesPerBlock * g.ChunkRatio);
    }

    [Theory]
    // 5 GiB, 32 MiB blocks, 512-byte sectors: 160 blocks, chunk ratio 128 -> the disk ends in the middle of chunk 1.
    [InlineData(5 * GiB, 32 * MiB, 512, 160L, 2L, 161L, 258L, 1 * MiB)]
    // Ends exactly at the end of chunk 0 (4 GiB = 128 blocks), then one sector more (a second chunk with one block).
    [InlineData(4 * GiB, 32 * MiB, 512, 128L, 1L, 128L, 129L, 1 * MiB)]
    [InlineData((4 * GiB) + 512, 32 * MiB, 512, 129L, 2L, 130L, 258L, 1 * MiB)]
    // A short last block (77 MiB + 2 KiB in 1 MiB blocks) and a single block.
    [InlineData((77 * MiB) + 2048, 1 * MiB, 512, 78L, 1L, 78L, 4097L, 1 * MiB)]
    [InlineData(512, 32 * MiB, 512, 1L, 1L, 1L, 129L, 1 * MiB)]
    // 4 KiB sectors: chunk ratio 1024 at 32 MiB, so 100 GiB (3200 blocks) ends mid chunk 3.
    [InlineData(100 * GiB, 32 * MiB, 4096, 3200L, 4L, 3203L, 4100L, 1 * MiB)]
    // 64 TiB: 16384 chunks; 16384 * 129 * 8 = 16.1 MiB -> 17 MiB, and 16384 * 4097 * 8 = 512.1 MiB -> 513 MiB.
    [InlineData(64L << 40, 32 * MiB, 512, 2097152L, 16384L, 2113535L, 2113536L, 17 * MiB)]
    [InlineData(64L << 40, 1 * MiB, 512, 67108864L, 16384L, 67125247L, 67125248L, 513 * MiB)]
    public void EntryCountsAndBatLengthMatchTheFormulas(long size, long blockSize, int sector, long npb, long nsb, long withoutParent, long withParent, long batLength)
    {
        var fixedDisk = new BatGeometry(size, (int)blockSize, sector, hasParent: false);
        var child = new BatGeometry(size, (int)blockSize, sector, hasParent: true);
        foreach (var g in new[] { fixedDisk, child })
        {
            Assert.Equal(npb, g.PayloadBlockCount);
            Assert.Equal(nsb, g.SectorBitmapBlockCount);
            Assert.Equal(withoutParent, g.TotalBatEntriesWithoutParent);
            Assert.Equal(withParent, g.TotalBatEntriesWithParent);
            Assert.Equal(batLength, g.BatLength);
        }

        Assert.Equal(withoutParent, fixedDisk.TotalBatEntries);
        Assert.Equal(withParent, child.TotalBatEntries);

        // Without a parent the last entry is the last payload block; with one it is the last chunk's bitmap entry.
        Assert.Equal(withoutParent - 1, fixedDisk.PayloadBatIndex(npb - 1));
        Assert.Equal(withParent - 1, child.SectorBitmapBatIndex(nsb - 1));
    }

    [Fact]
    public void BatLengthCoversEveryPublishedFormula()
    {
        var rng = new Random(11);
        foreach (int sector in new[] { 512, 4096 })
        {
            for (int blockShift = 20; blockShift <= 28; blockShift++)
            {
                for (int i = 0; i < 50; i++)
                {
                    long size = BlockAlignment.AlignUp(rng.NextInt64(1, 64L << 40), sector);
                    var g = new BatGeometry(size, 1 << blockShift, sector, hasParent: true);
                    long npb = g.PayloadBlockCount, nsb = g.SectorBitmapBlockCount, cr = g.ChunkRatio;
                    long entries = g.BatLength / BatEntry.Size;
                    Assert.Equal(0, g.BatLength % MiB);
                    Assert.True(entries >= npb + ((npb - 1) / cr), $"v1.00 fixed formula, size {size}");
                    Assert.True(entries >= nsb * (cr + 1), $"v1.00 differencing formula, size {size}");
                    Assert.True(entries >= npb + nsb, $"MS-VHDX 2.5 fixed formula, size {size}");
                    Assert.True(entries >= (nsb * (cr + 1)) - (((cr * nsb) - npb) % cr), $"MS-VHDX 2.5 differencing formula, size {size}");
                    Assert.True(entries - (MiB / BatEntry.Size) < nsb * (cr + 1), $"at most 1 MiB of slack, size {size}");
                }
            }
        }
    }

    [Theory]
    [InlineData(512, 256 * MiB)] // chunk ratio 16: small enough to walk every entry of several chunks
    [InlineData(512, 32 * MiB)]
    [InlineData(4096, 1 * MiB)]
    public void IndicesRoundTripAndTileTheTable(int sector, long blockSize)
    {
        var probe = new BatGeometry(1 * GiB, (int)blockSize, sector, hasParent: true);
        long cr = probe.ChunkRatio;

        // A disk of 3 chunks and a half, with a short last block.
        long size = (((3 * cr) + (cr / 2)) * blockSize) - sector;
        var g = new BatGeometry(size, (int)blockSize, sector, hasParent: true);
        Assert.Equal(4, g.SectorBitmapBlockCount);

        var seen = new bool[g.TotalBatEntriesWithParent];
        for (long k = 0; k < g.PayloadBlockCount; k++)
        {
            long index = g.PayloadBatIndex(k);
            Assert.Equal((g.ChunkOf(k) * (cr + 1)) + (k % cr), index); // the two forms of the spec's formula agree
            Assert.False(g.IsSectorBitmapBatIndex(index));
            Assert.Equal((false, k), g.Locate(index));
            Assert.False(seen[index]);
            seen[index] = true;
        }

        for (long c = 0; c < g.SectorBitmapBlockCount; c++)
        {
            long index = g.SectorBitmapBatIndex(c);
            Assert.True(g.IsSectorBitmapBatIndex(index));
            Assert.Equal((true, c), g.Locate(index));
            Assert.Equal(c, g.ChunkOf(g.Locate(index - 1).Number)); // the entry before a bitmap is its chunk's last block
            Assert.False(seen[index]);
            seen[index] = true;
        }

        // Every entry up to the last bitmap is a block or a bitmap, except the unused block slots of the last chunk.
        long unused = seen.Count(s => !s);
        Assert.Equal((g.SectorBitmapBlockCount * cr) - g.PayloadBlockCount, unused);
        for (long index = 0; index < seen.Length; index++)
        {
            if (!seen[index])
            {
                var (isBitmap, block) = g.Locate(index);
                Assert.False(isBitmap);
                Assert.True(block >= g.PayloadBlockCount);
            }
        }

        // Sector bitmap bytes of the blocks of one chunk are consecutive and fill the 1 MiB bitmap exactly.
        Assert.Equal(0, g.SectorBitmapOffset(cr));
        Assert.Equal((cr - 1) * g.SectorBitmapBytesPerBlock, g.SectorBitmapOffset((2 * cr) - 1));
        Assert.Equal(MiB, g.SectorBitmapOffset(cr - 1) + g.SectorBitmapBytesPerBlock);
    }

    [Theory]
    [InlineData(0L, 32 * MiB, 512)]
    [InlineData(-512L, 32 * MiB, 512)]
    [InlineData((64L << 40) + 512, 32 * MiB, 512)]
    [InlineData(1L << 30, 3 * MiB, 512)]
    [InlineData(1L << 30, 512 * MiB, 512)]
    [InlineData(1L << 30, 512 * 1024, 512)]
    [InlineData(1L << 30, 32 * MiB, 1024)]
    public void RefusesValuesTheFormatDoesNotAllow(long size, long blockSize, int sector) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatGeometry(size, (int)blockSize, sector, hasParent: false));

    [Fact]
    public void ReaderLayoutAndDifferencingFormatShareOneGeometry()
    {
        var disk = new ZeroSource((5 * GiB) + 4096);
        using var vhdx = new SynthesizedVhdx(disk, Guid.Parse("2f1e4b8a-0c3d-4e5f-8a9b-1c2d3e4f5a6b"), new VhdxLayoutOptions { BlockSize = 32 << 20 });
        var expected = new BatGeometry((5 * GiB) + 4096, 32 << 20, 512, hasParent: false);
        Assert.Equal(expected, vhdx.Layout.Geometry);
        using (var reader = VhdxReader.Open(vhdx, "synthesized"))
        {
            Assert.Equal(expected, reader.Geometry);
            Assert.Equal(vhdx.Layout.BatLength, reader.BatLength);
        }

        var parent = DifferencingParent.FromLayout(vhdx.Layout, "base.vhdx");
        var (section, _, fileLength) = DifferencingVhdxFormat.Build(parent, 2 << 20, Guid.NewGuid(), Guid.NewGuid());
        Assert.True(RegionTable.TryRead(section.AsSpan((int)RegionTable.Table1Offset), out var regions));
        var bat = regions.Entries.Single(e => e.Guid == VhdxGuids.BatRegion);
        var child = new BatGeometry(parent.VirtualSize, 2 << 20, 512, hasParent: true);
        Assert.Equal(child.BatLength, (long)bat.Length);
        Assert.Equal(DifferencingVhdxFormat.BatOffset + child.BatLength, fileLength);
    }
}
