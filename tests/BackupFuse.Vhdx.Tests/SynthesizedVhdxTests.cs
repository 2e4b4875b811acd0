using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

/// <summary>The shared layer contract, on a small VHDX with 1 MiB blocks (several BAT entries, zero runs, a partial sector).</summary>
public sealed class SynthesizedVhdxConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var disk = new PatternSource((5L << 20) + 1000, seed: 21, zeroBlock: 256 * 1024, zeroEvery: 4);
        var vhdx = new SynthesizedVhdx(disk, Guid.Parse("6a0d6f38-2c11-4b5e-8a54-3e2f0f7b9c01"), new VhdxLayoutOptions { BlockSize = 1 << 20 });

        // Expected bytes built independently of Read: the structures from their own Write methods, the disk from the
        // pattern, everything else zero.
        var layout = vhdx.Layout;
        var expected = new byte[layout.FileLength];
        new FileTypeIdentifier("BackupFuse").Write(expected);
        layout.CurrentHeader.Write(expected.AsSpan((int)VhdxHeader.Header2Offset));
        (layout.CurrentHeader with { SequenceNumber = VhdxLayout.Header1SequenceNumber }).Write(expected.AsSpan((int)VhdxHeader.Header1Offset));
        var regions = new RegionTable(
        [
            new RegionTableEntry(VhdxGuids.BatRegion, VhdxLayout.BatOffset, (uint)layout.BatLength, true),
            new RegionTableEntry(VhdxGuids.MetadataRegion, VhdxLayout.MetadataOffset, VhdxLayout.MetadataLength, true),
        ]);
        regions.Write(expected.AsSpan((int)RegionTable.Table1Offset));
        regions.Write(expected.AsSpan((int)RegionTable.Table2Offset));
        var meta = expected.AsSpan((int)VhdxLayout.MetadataOffset, VhdxLayout.MetadataLength);
        new MetadataTable(
        [
            new MetadataTableEntry(VhdxGuids.FileParameters, 65536, 8, false, false, true),
            new MetadataTableEntry(VhdxGuids.VirtualDiskSize, 65544, 8, false, true, true),
            new MetadataTableEntry(VhdxGuids.VirtualDiskId, 65552, 16, false, true, true),
            new MetadataTableEntry(VhdxGuids.LogicalSectorSize, 65568, 4, false, true, true),
            new MetadataTableEntry(VhdxGuids.PhysicalSectorSize, 65572, 4, false, true, true),
        ]).Write(meta);
        new FileParameters(1 << 20, true, false).Write(meta[65536..]);
        new VirtualDiskSize((ulong)layout.VirtualDiskSize).Write(meta[65544..]);
        new VirtualDiskId(layout.VirtualDiskId).Write(meta[65552..]);
        new LogicalSectorSize(512).Write(meta[65568..]);
        new PhysicalSectorSize(4096).Write(meta[65572..]);
        for (long k = 0; k < layout.PayloadBlockCount; k++)
        {
            BatEntry.Payload(PayloadBlockState.FullyPresent, (ulong)(layout.PayloadOffset + (k << 20)))
                .Write(expected.AsSpan((int)(VhdxLayout.BatOffset + (layout.PayloadBatIndex(k) * 8))));
        }

        disk.Read(0, expected.AsSpan((int)layout.PayloadOffset, (int)disk.Length));
        return (vhdx, expected);
    }
}

public sealed class SynthesizedVhdxTests
{
    private static readonly Guid Identity = Guid.Parse("c3b1d2e4-5f60-4789-9abc-def012345678");

    [Fact]
    public void SameIdentityGivesIdenticalBytes()
    {
        using var a = new SynthesizedVhdx(new PatternSource(200L << 20, seed: 1), Identity);
        using var b = new SynthesizedVhdx(new PatternSource(200L << 20, seed: 1), Identity);
        Assert.Equal(ReadRange(a, 0, 8 << 20), ReadRange(b, 0, 8 << 20));
        Assert.Equal(ReadRange(a, VhdxLayout.BatOffset, (int)a.Layout.BatLength), ReadRange(b, VhdxLayout.BatOffset, (int)b.Layout.BatLength));
        Assert.Equal(a.DataWriteGuid, b.DataWriteGuid);
    }

    [Fact]
    public void DifferentIdentityGivesDifferentGuidsInTheFile()
    {
        using var a = new SynthesizedVhdx(new ZeroSource(10L << 20), Identity);
        using var b = new SynthesizedVhdx(new ZeroSource(10L << 20), Guid.Parse("c3b1d2e4-5f60-4789-9abc-def012345679"));
        using var ra = VhdxReader.Open(a);
        using var rb = VhdxReader.Open(b);
        Assert.NotEqual(ra.Header.DataWriteGuid, rb.Header.DataWriteGuid);
        Assert.NotEqual(ra.Header.FileWriteGuid, rb.Header.FileWriteGuid);
        Assert.NotEqual(ra.VirtualDiskId, rb.VirtualDiskId);
        Assert.Equal(a.DataWriteGuid, ra.Header.DataWriteGuid);
        Assert.NotEqual(ReadRange(a, 0, 1 << 20), ReadRange(b, 0, 1 << 20));
    }

    [Fact]
    public void BothHeadersAreValidWithDifferentSequenceNumbersAndRegionTablesMatch()
    {
        using var v = new SynthesizedVhdx(new ZeroSource(1L << 20), Identity);
        var section = ReadRange(v, 0, 1 << 20);
        Assert.True(VhdxHeader.TryRead(section.AsSpan((int)VhdxHeader.Header1Offset), out var h1));
        Assert.True(VhdxHeader.TryRead(section.AsSpan((int)VhdxHeader.Header2Offset), out var h2));
        Assert.NotEqual(h1.SequenceNumber, h2.SequenceNumber);
        Assert.Equal(h1 with { SequenceNumber = h2.SequenceNumber }, h2);
        Assert.Equal(Guid.Empty, h2.LogGuid);
        Assert.Equal((ushort)0, h2.LogVersion);
        Assert.Equal((ushort)1, h2.Version);
        Assert.Equal((ulong)VhdxLayout.LogOffset, h2.LogOffset);
        Assert.Equal((uint)VhdxLayout.LogLength, h2.LogLength);
        Assert.Equal(
            section.AsSpan((int)RegionTable.Table1Offset, RegionTable.Size).ToArray(),
            section.AsSpan((int)RegionTable.Table2Offset, RegionTable.Size).ToArray());
    }

    [Fact]
    public void ExtentsFollowTheDiskAndTurnUnallocatedIntoZero()
    {
        var disk = new MemorySource(8L << 20);
        disk.Write(3L << 20, new byte[] { 1, 2, 3 }); // one 4 KiB block allocated, the rest Unallocated
        using var v = new SynthesizedVhdx(disk, Identity);
        long p = v.Layout.PayloadOffset;

        Assert.Equal(new Extent(0, 320 * 1024, ExtentKind.Data), v.GetExtent(0, long.MaxValue));
        Assert.Equal(ExtentKind.Zero, v.GetExtent(VhdxLayout.LogOffset, 1).Kind);
        Assert.Equal(ExtentKind.Data, v.GetExtent(VhdxLayout.MetadataOffset, 1).Kind);
        Assert.Equal(ExtentKind.Data, v.GetExtent(VhdxLayout.BatOffset, 1).Kind);
        Assert.Equal(new Extent(p, 3L << 20, ExtentKind.Zero), v.GetExtent(p, long.MaxValue));
        Assert.Equal(new Extent(p + (3L << 20), 4096, ExtentKind.Data), v.GetExtent(p + (3L << 20), long.MaxValue));
        Assert.Equal(new Extent(p + 10, 5, ExtentKind.Zero), v.GetExtent(p + 10, 5));
        var tail = v.GetExtent(p + (8L << 20), long.MaxValue);
        Assert.Equal(new Extent(p + (8L << 20), v.Length - (p + (8L << 20)), ExtentKind.Zero), tail);

        var three = new byte[3];
        v.Read(p + (3L << 20), three);
        Assert.Equal(new byte[] { 1, 2, 3 }, three);
    }

    [Fact]
    public void TryMapToDiskTranslatesOnlyPayload()
    {
        using var v = new SynthesizedVhdx(new ZeroSource((2L << 20) + 512), Identity);
        long p = v.Layout.PayloadOffset;
        Assert.True(v.TryMapToDisk(p + 100, out long disk, out long run));
        Assert.Equal(100, disk);
        Assert.Equal((2L << 20) + 512 - 100, run);
        Assert.Equal(p + 100, v.MapToFile(100));
        Assert.False(v.TryMapToDisk(p + (2L << 20) + 512, out _, out _)); // padding after the disk
        Assert.False(v.TryMapToDisk(VhdxLayout.BatOffset, out _, out _));
        Assert.False(v.TryMapToDisk(-1, out _, out _));
        Assert.False(v.TryMapToDisk(v.Length, out _, out _));
    }

    [Fact]
    public void WritesAreRefusedAndTheDiskIsDisposedWithTheVhdx()
    {
        var disk = new TrackingSource(1L << 20);
        var v = new SynthesizedVhdx(disk, Identity);
        Assert.False(v.CanWrite);
        Assert.Throws<NotSupportedException>(() => v.Write(0, new byte[1]));
        v.Dispose();
        Assert.True(disk.Disposed);

        var kept = new TrackingSource(1L << 20);
        new SynthesizedVhdx(kept, Identity, ownsDisk: false).Dispose();
        Assert.False(kept.Disposed);
    }

    [Fact]
    public void DiskErrorsPropagate()
    {
        var disk = new FaultInjectingFilter(new PatternSource(4L << 20), 1L << 20, 10);
        using var v = new SynthesizedVhdx(disk, Identity);
        var buffer = new byte[4096];
        v.Read(v.Layout.PayloadOffset, buffer);
        Assert.Throws<InvalidDataException>(() => v.Read(v.Layout.PayloadOffset + (1L << 20) - 100, buffer));
    }

    internal static byte[] ReadRange(IBlockSource source, long offset, int length)
    {
        var buffer = new byte[length];
        source.Read(offset, buffer);
        return buffer;
    }

    private sealed class TrackingSource(long length) : BlockSource
    {
        public bool Disposed { get; private set; }

        public override long Length { get; } = length;

        public override void Read(long offset, Span<byte> buffer) => buffer.Clear();

        protected override void Dispose(bool disposing) => Disposed = true;
    }
}
