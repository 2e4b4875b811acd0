using System.Buffers.Binary;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

public sealed class LayoutTests
{
    private const long MiB = 1L << 20;
    private static readonly Guid Identity = new("0b6e4b0e-6f43-4f52-9d1c-2f8f6d7f1a11");

    [Theory]
    [InlineData(1 * MiB, 32 * MiB, 1L, 1L, 1 * MiB)]
    [InlineData((77 * MiB) + 2048, 32 * MiB, 3L, 1L, 1 * MiB)]
    [InlineData(1L << 30, 32 * MiB, 32L, 1L, 1 * MiB)]
    [InlineData(1L << 40, 32 * MiB, 32768L, 256L, 1 * MiB)] // 256 * 129 * 8 = 264192 bytes -> 1 MiB
    [InlineData(64L << 40, 32 * MiB, 2097152L, 16384L, 17 * MiB)] // 16384 * 129 * 8 = 16.1 MiB -> 17 MiB
    [InlineData(9L << 30, 1 * MiB, 9216L, 3L, 1 * MiB)] // 3 chunks of 4096 blocks
    [InlineData(64L << 40, 1 * MiB, 67108864L, 16384L, 513 * MiB)] // 16384 * 4097 * 8 = 512.1 MiB
    public void ArithmeticMatchesTheSpec(long diskLength, long blockSize, long npb, long nsb, long batLength)
    {
        var layout = VhdxLayout.Create(diskLength, Identity, new VhdxLayoutOptions { BlockSize = (int)blockSize });
        Assert.Equal(diskLength, layout.VirtualDiskSize);
        Assert.Equal(npb, layout.PayloadBlockCount);
        Assert.Equal(nsb, layout.SectorBitmapBlockCount);
        Assert.Equal((8 * MiB * 512) / blockSize, layout.ChunkRatio);
        Assert.Equal(batLength, layout.BatLength);
        Assert.Equal(VhdxLayout.BatOffset + batLength, layout.PayloadOffset);
        Assert.Equal(layout.PayloadOffset + (npb * blockSize), layout.FileLength);
        Assert.Equal(0, layout.FileLength % MiB);
        Assert.True(layout.BatLength >= nsb * (layout.ChunkRatio + 1) * 8);

        // Payload block k: index k + floor(k / CR), FULLY_PRESENT at its contiguous offset; SB entries are 0.
        foreach (long k in new[] { 0, 1, layout.ChunkRatio - 1, layout.ChunkRatio, (2 * layout.ChunkRatio) + 5, npb - 1 })
        {
            if (k < 0 || k >= npb)
            {
                continue;
            }

            long index = layout.PayloadBatIndex(k);
            Assert.Equal(k + (k / layout.ChunkRatio), index);
            var entry = BatEntry.FromRaw(layout.BatEntryAt(index));
            Assert.Equal(PayloadBlockState.FullyPresent, entry.PayloadState);
            Assert.Equal((ulong)(layout.PayloadOffset + (k * blockSize)), entry.FileOffset);
        }

        for (long c = 0; c < nsb; c += Math.Max(1, nsb / 7))
        {
            Assert.Equal(0UL, layout.BatEntryAt(layout.SectorBitmapBatIndex(c)));
        }

        long lastUsed = layout.PayloadBatIndex(npb - 1);
        if (lastUsed + 1 < layout.BatLength / 8)
        {
            Assert.Equal(0UL, layout.BatEntryAt(lastUsed + 1)); // entries past the last block are unused
        }

        AssertExtentsTile(layout);
    }

    [Fact]
    public void BatWalkAcrossChunksMatchesBruteForce()
    {
        // 1 MiB blocks: chunk ratio 4096, so 9217 blocks span three chunk boundaries (SB entries at 4096, 8193).
        var layout = VhdxLayout.Create((9L << 30) + MiB, Identity, new VhdxLayoutOptions { BlockSize = (int)MiB });
        long entries = layout.BatLength / 8;
        var bat = new byte[entries * 8];
        layout.ReadBat(0, bat);
        long block = 0;
        for (long i = 0; i < entries; i++)
        {
            ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(bat.AsSpan((int)(i * 8)));
            if ((i + 1) % (layout.ChunkRatio + 1) == 0 || block >= layout.PayloadBlockCount)
            {
                Assert.Equal(0UL, raw);
                continue;
            }

            Assert.Equal((ulong)(layout.PayloadOffset + (block * MiB)) | 6UL, raw);
            block++;
        }

        Assert.Equal(layout.PayloadBlockCount, block);

        // Unaligned BAT reads equal slices of the full table.
        var rng = new Random(1);
        for (int n = 0; n < 200; n++)
        {
            long at = rng.NextInt64(bat.Length);
            int len = (int)Math.Min(bat.Length - at, rng.Next(1, 100));
            var piece = new byte[len];
            layout.ReadBat(at, piece);
            Assert.Equal(bat.AsSpan((int)at, len).ToArray(), piece);
        }
    }

    [Fact]
    public void SixtyTebibyteLayoutAllocatesNothingProportional()
    {
        VhdxLayout.Create(MiB, Identity); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        var layout = VhdxLayout.Create(60L << 40, Identity);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 * MiB, $"a 60 TiB layout allocated {allocated} bytes");
        Assert.Equal(60L << 40, layout.VirtualDiskSize);
        AssertExtentsTile(layout);
    }

    [Fact]
    public void VirtualSizeRoundsUpToTheSectorOrTheChosenAlignment()
    {
        Assert.Equal(5 * MiB + 1024, VhdxLayout.Create((5 * MiB) + 1000, Identity).VirtualDiskSize);
        Assert.Equal((5 * MiB) + 512, VhdxLayout.Create((5 * MiB) + 1, Identity).VirtualDiskSize);
        Assert.Equal((5 * MiB) + 4096, VhdxLayout.Create((5 * MiB) + 1, Identity, new VhdxLayoutOptions { VirtualSizeAlignment = 4096 }).VirtualDiskSize);
        var layout = VhdxLayout.Create((5 * MiB) + 1000, Identity);
        Assert.Equal((5 * MiB) + 1000, layout.DiskLength);
        var payload = layout.Extents.ToArray().Single(e => e.Kind == LayoutExtentKind.Payload);
        Assert.Equal((5 * MiB) + 1000, payload.Length); // bytes past the disk come from the following Zero run
    }

    [Fact]
    public void InvalidOptionsAndSizesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VhdxLayout.Create(0, Identity));
        var tooBig = Assert.Throws<InvalidDataException>(() => VhdxLayout.Create((64L << 40) + 1, Identity));
        Assert.Contains($"disk of {(64L << 40) + 1} bytes is larger than VHDX's 64 TiB limit", tooBig.Message);
        Assert.Throws<ArgumentException>(() => VhdxLayout.Create(MiB, Identity, new VhdxLayoutOptions { BlockSize = 3 * (int)MiB }));
        Assert.Throws<ArgumentException>(() => VhdxLayout.Create(MiB, Identity, new VhdxLayoutOptions { BlockSize = 512 * (int)MiB }));
        Assert.Throws<ArgumentException>(() => VhdxLayout.Create(MiB, Identity, new VhdxLayoutOptions { LogicalSectorSize = 1024 }));
        VhdxLayout.Create(64L << 40, Identity); // the limit itself is fine
    }

    [Fact]
    public void DerivedGuidsAreStableVersionedAndDistinct()
    {
        var a = VhdxLayout.Create(MiB, Identity);
        var b = VhdxLayout.Create(7 * MiB, Identity);
        var c = VhdxLayout.Create(MiB, Guid.Parse("0b6e4b0e-6f43-4f52-9d1c-2f8f6d7f1a12"));
        Assert.Equal(a.DataWriteGuid, b.DataWriteGuid);
        Assert.Equal(a.DataWriteGuid, VhdxLayout.DeriveGuid(Identity, "BackupFuse.Vhdx/v1/DataWriteGuid"));
        Assert.NotEqual(a.DataWriteGuid, c.DataWriteGuid);
        Assert.NotEqual(a.FileWriteGuid, c.FileWriteGuid);
        Assert.NotEqual(a.VirtualDiskId, c.VirtualDiskId);
        Assert.Equal(3, new[] { a.FileWriteGuid, a.DataWriteGuid, a.VirtualDiskId }.Distinct().Count());
        Assert.Equal(8, a.DataWriteGuid.Version);
        Assert.Equal(0x80, a.DataWriteGuid.ToByteArray()[8] & 0xC0);
    }

    private static void AssertExtentsTile(VhdxLayout layout)
    {
        long pos = 0;
        foreach (var e in layout.Extents)
        {
            Assert.Equal(pos, e.FileOffset);
            Assert.True(e.Length > 0);
            Assert.Equal(layout.FindExtent(e.FileOffset), layout.FindExtent(e.End - 1));
            pos = e.End;
        }

        Assert.Equal(layout.FileLength, pos);
    }
}
