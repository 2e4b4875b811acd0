using System.Buffers.Binary;
using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

public sealed class VhdxReaderTests : IDisposable
{
    private static readonly Guid Identity = Guid.Parse("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0");
    private readonly TempDirectory _dir = new("bf-vhdxr");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ReadsADynamicFileWrittenByQemu()
    {
        // qemu-img creates every block ZERO (state 2); qemu-io writes allocate FULLY_PRESENT blocks out of disk order.
        string path = _dir["dyn.vhdx"];
        ExternalTool.Check("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", path, "20M");
        ExternalTool.Check("qemu-io", "-f", "vhdx", "-c", "write -P 0xcd 5M 1M", "-c", "write -P 0xab 1048000 600", path);
        using var reader = VhdxReader.Open(new FileBlockSource(path), ownsFile: true);
        Assert.Equal(20L << 20, reader.Length);
        Assert.Equal(1 << 20, reader.PayloadBlockSize);
        Assert.False(reader.FileParameters.LeaveBlocksAllocated);

        var all = new byte[reader.Length];
        reader.Read(0, all);
        var expected = new byte[reader.Length];
        expected.AsSpan(5 << 20, 1 << 20).Fill(0xcd);
        expected.AsSpan(1048000, 600).Fill(0xab);
        Assert.True(expected.AsSpan().SequenceEqual(all), "dynamic file read differs");

        Assert.Equal(PayloadBlockState.Zero, reader.GetPayloadBlockEntry(2).PayloadState);
        Assert.Equal(PayloadBlockState.FullyPresent, reader.GetPayloadBlockEntry(5).PayloadState);
        Assert.Equal(new Extent(0, 2L << 20, ExtentKind.Data), reader.GetExtent(0, long.MaxValue)); // blocks 0, 1
        Assert.Equal(new Extent(2L << 20, 3L << 20, ExtentKind.Zero), reader.GetExtent(2L << 20, long.MaxValue));
        Assert.Equal(new Extent(5L << 20, 1L << 20, ExtentKind.Data), reader.GetExtent(5L << 20, long.MaxValue));
    }

    [Fact]
    public void ReadsAQemuConvertedDiskLikeQemuDoes()
    {
        var disk = new PatternSource((9L << 20) + 4096, seed: 33, zeroBlock: 1 << 20, zeroEvery: 2);
        string raw = _dir["d.raw"];
        string vhdx = _dir["d.vhdx"];
        SynthesizedVhdxExport.ToSparseFile(disk, raw);
        ExternalTool.Check("qemu-img", "convert", "-f", "raw", "-O", "vhdx", raw, vhdx);
        using var reader = VhdxReader.Open(new FileBlockSource(vhdx), ownsFile: true);
        var all = new byte[reader.Length];
        reader.Read(0, all);
        var expected = new byte[disk.Length];
        disk.Read(0, expected);
        Assert.True(expected.AsSpan().SequenceEqual(all), "converted file read differs");
    }

    [Fact]
    public void PendingLogIsRefused()
    {
        var file = SynthesizedBytes(out var layout);
        var dirty = layout.CurrentHeader with { LogGuid = Guid.NewGuid() };
        dirty.Write(file.AsSpan((int)VhdxHeader.Header2Offset));
        var e = Assert.Throws<NotSupportedException>(() => VhdxReader.Open(new MemorySource(file), "dirty.vhdx"));
        Assert.Contains("dirty.vhdx", e.Message);
        Assert.Contains("log", e.Message);
    }

    [Fact]
    public void DamagedCurrentHeaderFallsBackToTheOther()
    {
        var file = SynthesizedBytes(out _);
        file[VhdxHeader.Header2Offset + 100] ^= 1;
        using var reader = VhdxReader.Open(new MemorySource(file));
        Assert.Equal(1, reader.HeaderSlot);
        Assert.Equal(VhdxLayout.Header1SequenceNumber, reader.Header.SequenceNumber);

        file[VhdxHeader.Header1Offset + 100] ^= 1;
        var e = Assert.Throws<InvalidDataException>(() => VhdxReader.Open(new MemorySource(file), "both.vhdx"));
        Assert.Contains("both.vhdx", e.Message);
    }

    [Fact]
    public void EqualSequenceNumbersNeedIdenticalHeaders()
    {
        var file = SynthesizedBytes(out var layout);
        layout.CurrentHeader.Write(file.AsSpan((int)VhdxHeader.Header1Offset)); // Disk2VHD style: two identical slots
        using (var reader = VhdxReader.Open(new MemorySource(file)))
        {
            Assert.Equal(1, reader.HeaderSlot);
        }

        (layout.CurrentHeader with { FileWriteGuid = Guid.NewGuid() }).Write(file.AsSpan((int)VhdxHeader.Header1Offset));
        Assert.Throws<InvalidDataException>(() => VhdxReader.Open(new MemorySource(file)));
    }

    [Fact]
    public void DamagedRegionTable1FallsBackToTable2()
    {
        var file = SynthesizedBytes(out _);
        file[RegionTable.Table1Offset + 20] ^= 1;
        using (VhdxReader.Open(new MemorySource(file)))
        {
        }

        file[RegionTable.Table2Offset + 20] ^= 1;
        Assert.Throws<InvalidDataException>(() => VhdxReader.Open(new MemorySource(file)));
    }

    [Fact]
    public void UnknownRequiredMetadataItemIsRefused()
    {
        var file = SynthesizedBytes(out _);
        var meta = file.AsSpan((int)VhdxLayout.MetadataOffset, VhdxLayout.MetadataLength);
        Assert.True(MetadataTable.TryRead(meta, out var table));
        var entries = table.Entries.ToList();
        entries.Add(new MetadataTableEntry(Guid.NewGuid(), 70000, 4, false, false, true));
        new MetadataTable(entries).Write(meta);
        Assert.Throws<NotSupportedException>(() => VhdxReader.Open(new MemorySource(file)));
    }

    [Fact]
    public void WrongItemLengthAndTruncatedFileAreCorruption()
    {
        var file = SynthesizedBytes(out _);
        var meta = file.AsSpan((int)VhdxLayout.MetadataOffset, VhdxLayout.MetadataLength);
        int lengthField = MetadataTable.HeaderSize + MetadataTableEntry.FieldOffsets.Length; // File Parameters is entry 0
        BinaryPrimitives.WriteUInt32LittleEndian(meta[lengthField..], 16);
        Assert.Throws<InvalidDataException>(() => VhdxReader.Open(new MemorySource(file)));
        BinaryPrimitives.WriteUInt32LittleEndian(meta[lengthField..], 8);

        // Cut the file in the middle of block 1 (block 2 gone): opening works, block 0 reads, blocks 1 and 2 raise,
        // block 1 even where its surviving first half is asked for.
        var shortFile = file.AsSpan(0, file.Length - (3 << 19)).ToArray();
        using var reader = VhdxReader.Open(new MemorySource(shortFile), "short.vhdx");
        var buffer = new byte[512];
        reader.Read(0, buffer);
        var e = Assert.Throws<InvalidDataException>(() => reader.Read(reader.Length - 512, buffer));
        Assert.Contains("short.vhdx", e.Message);
        Assert.Throws<InvalidDataException>(() => reader.Read(1 << 20, buffer));
    }

    [Fact]
    public void NotAVhdxIsRefused()
    {
        Assert.Throws<InvalidDataException>(() => VhdxReader.Open(new MemorySource(new byte[4 << 20])));
    }

    /// <summary>A small synthesized VHDX (2 MiB + 4 KiB disk, 1 MiB blocks) as bytes to damage.</summary>
    private static byte[] SynthesizedBytes(out VhdxLayout layout)
    {
        using var v = new SynthesizedVhdx(new PatternSource((2L << 20) + 4096, seed: 2), Identity, new VhdxLayoutOptions { BlockSize = 1 << 20 });
        layout = v.Layout;
        return SynthesizedVhdxTests.ReadRange(v, 0, (int)v.Length);
    }
}
