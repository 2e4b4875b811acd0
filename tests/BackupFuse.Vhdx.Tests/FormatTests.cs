using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

public sealed class FormatTests
{
    [Fact]
    public void GuidsUseTheMixedEndianLayout()
    {
        byte[] expected = [0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08];
        Assert.Equal(expected, VhdxGuids.BatRegion.ToByteArray());
    }

    [Fact]
    public void FileTypeIdentifierRoundTrips()
    {
        var buffer = new byte[FileTypeIdentifier.Size];
        new FileTypeIdentifier("BackupFuse test").Write(buffer);
        Assert.Equal("vhdxfile"u8.ToArray(), buffer[..8]);
        Assert.True(FileTypeIdentifier.TryRead(buffer, out var back));
        Assert.Equal("BackupFuse test", back.Creator);
        buffer[0] = (byte)'X';
        Assert.False(FileTypeIdentifier.TryRead(buffer, out _));
    }

    [Fact]
    public void HeaderRoundTripsAndRejectsCorruption()
    {
        var header = new VhdxHeader(42, Guid.NewGuid(), Guid.NewGuid(), Guid.Empty, 0, 1, 1 << 20, 1 << 20);
        var buffer = new byte[VhdxHeader.Size];
        header.Write(buffer);
        Assert.True(VhdxHeader.TryRead(buffer, out var back));
        Assert.Equal(header, back);
        Assert.Equal(Crc32C.ComputeWithZeroedField(buffer, 4), BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(4)));

        buffer[4000] ^= 1; // a reserved byte: still covered by the checksum
        Assert.False(VhdxHeader.TryRead(buffer, out _));
        buffer[4000] ^= 1;
        buffer[4] ^= 0x80; // the checksum itself
        Assert.False(VhdxHeader.TryRead(buffer, out _));
    }

    [Fact]
    public void RegionTableRoundTripsAndRejectsCorruption()
    {
        var table = new RegionTable(
        [
            new RegionTableEntry(VhdxGuids.BatRegion, 3 << 20, 1 << 20, true),
            new RegionTableEntry(VhdxGuids.MetadataRegion, 2 << 20, 1 << 20, false),
        ]);
        var buffer = new byte[RegionTable.Size];
        table.Write(buffer);
        Assert.True(RegionTable.TryRead(buffer, out var back));
        Assert.Equal(table.Entries, back.Entries);
        Assert.Equal(VhdxGuids.BatRegion, back.Find(VhdxGuids.BatRegion)!.Value.Guid);

        buffer[RegionTable.Size - 1] ^= 1; // the checksum covers all 64 KiB
        Assert.False(RegionTable.TryRead(buffer, out _));
    }

    [Fact]
    public void MetadataTableAndItemsRoundTrip()
    {
        var table = new MetadataTable(
        [
            new MetadataTableEntry(VhdxGuids.FileParameters, 65536, 8, false, false, true),
            new MetadataTableEntry(VhdxGuids.VirtualDiskSize, 65544, 8, false, true, true),
            new MetadataTableEntry(Guid.NewGuid(), 70000, 3, true, false, false),
        ]);
        var buffer = new byte[MetadataTable.Size];
        table.Write(buffer);
        Assert.True(MetadataTable.TryRead(buffer, out var back));
        Assert.Equal(table.Entries, back.Entries);
        Assert.Equal(0x4u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(MetadataTable.HeaderSize + MetadataTableEntry.FieldOffsets.Flags)));
        Assert.Equal(0x6u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(MetadataTable.HeaderSize + MetadataTableEntry.Size + MetadataTableEntry.FieldOffsets.Flags)));
        buffer[0] = (byte)'X';
        Assert.False(MetadataTable.TryRead(buffer, out _));

        var item = new byte[16];
        new FileParameters(32 << 20, true, false).Write(item);
        Assert.True(FileParameters.TryRead(item, out var fp));
        Assert.Equal(new FileParameters(32 << 20, true, false), fp);
        Assert.True(fp.IsBlockSizeValid);
        Assert.False(new FileParameters(3 << 20, false, false).IsBlockSizeValid);

        new VirtualDiskSize(123456789).Write(item);
        Assert.True(VirtualDiskSize.TryRead(item, out var size));
        Assert.Equal(123456789UL, size.Value);

        var id = Guid.NewGuid();
        new VirtualDiskId(id).Write(item);
        Assert.True(VirtualDiskId.TryRead(item, out var idBack));
        Assert.Equal(id, idBack.Value);

        new LogicalSectorSize(4096).Write(item);
        Assert.True(LogicalSectorSize.TryRead(item, out var ls));
        Assert.True(ls.IsValid);
        new PhysicalSectorSize(1000).Write(item);
        Assert.True(PhysicalSectorSize.TryRead(item, out var ps));
        Assert.False(ps.IsValid);
    }

    [Fact]
    public void ParentLocatorRoundTripsAndRejectsBrokenOffsets()
    {
        var locator = new ParentLocator(VhdxGuids.VhdxParentLocatorType,
        [
            new(ParentLocator.ParentLinkageKey, "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}"),
            new(ParentLocator.RelativePathKey, @".\base.vhdx"),
        ]);
        var buffer = new byte[locator.ByteCount];
        locator.Write(buffer);
        Assert.True(ParentLocator.TryRead(buffer, out var back));
        Assert.Equal(locator.LocatorType, back.LocatorType);
        Assert.Equal(locator.Entries, back.Entries);
        Assert.Equal(@".\base.vhdx", back[ParentLocator.RelativePathKey]);
        Assert.Null(back["volume_path"]);

        // The first key must start right after the header and entry table and be UTF-16LE.
        ParentLocatorEntry.TryRead(buffer.AsSpan(ParentLocator.HeaderSize), out var first);
        Assert.Equal((uint)(ParentLocator.HeaderSize + (2 * ParentLocatorEntry.Size)), first.KeyOffset);
        Assert.Equal("parent_linkage", Encoding.Unicode.GetString(buffer, (int)first.KeyOffset, first.KeyLength));

        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(ParentLocator.HeaderSize + ParentLocatorEntry.FieldOffsets.ValueOffset), 60000);
        Assert.Throws<InvalidDataException>(() => ParentLocator.TryRead(buffer, out _));
    }

    [Fact]
    public void BatEntryEncodesStateAndOffset()
    {
        var entry = BatEntry.Payload(PayloadBlockState.FullyPresent, 37UL << 20);
        Assert.Equal((37UL << 20) | 6, entry.ToRaw());
        var buffer = new byte[8];
        entry.Write(buffer);
        Assert.True(BatEntry.TryRead(buffer, out var back));
        Assert.Equal(entry, back);
        Assert.Equal(PayloadBlockState.FullyPresent, back.PayloadState);

        BinaryPrimitives.WriteUInt64LittleEndian(buffer, (37UL << 20) | 6 | (1 << 5));
        Assert.False(BatEntry.TryRead(buffer, out var reserved));
        Assert.Equal(entry, reserved); // decoded anyway, reserved bits ignored
        Assert.Throws<InvalidOperationException>(() => new BatEntry(6, 12345).ToRaw());
    }

    [Fact]
    public void LogEntryRoundTripsWithWholeEntryChecksum()
    {
        const ulong seq = 0x1_0000_0007;
        var guid = Guid.NewGuid();
        var entry = new byte[3 * 4096];
        var header = new LogEntryHeader((uint)entry.Length, 0, seq, 2, guid, 4 << 20, 4 << 20);
        header.Write(entry);
        new LogZeroDescriptor(8192, 1 << 20, seq).Write(entry.AsSpan(LogEntryHeader.Size));

        var target = new byte[4096];
        new Random(9).NextBytes(target);
        var desc = LogDataSector.Encode(target, 3 << 20, seq, entry.AsSpan(2 * 4096));
        desc.Write(entry.AsSpan(LogEntryHeader.Size + LogZeroDescriptor.Size));
        LogEntryHeader.StampChecksum(entry);

        Assert.True(LogEntryHeader.VerifyChecksum(entry));
        Assert.True(LogEntryHeader.TryRead(entry, out var headerBack));
        Assert.Equal(header, headerBack);
        Assert.Equal(1, LogEntryHeader.DescriptorSectors(126));
        Assert.Equal(2, LogEntryHeader.DescriptorSectors(127));
        Assert.Equal(1, LogEntryHeader.DescriptorSectors(0));
        Assert.True(LogZeroDescriptor.TryRead(entry.AsSpan(LogEntryHeader.Size), out var zero));
        Assert.Equal(new LogZeroDescriptor(8192, 1 << 20, seq), zero);
        Assert.True(LogDataDescriptor.TryRead(entry.AsSpan(LogEntryHeader.Size + LogZeroDescriptor.Size), out var descBack));
        Assert.Equal(desc, descBack);
        Assert.True(LogDataSector.TryRead(entry.AsSpan(2 * 4096), out var sector));
        Assert.Equal(seq, sector.SequenceNumber);

        var rebuilt = new byte[4096];
        LogDataSector.Decode(descBack, entry.AsSpan(2 * 4096, 4096), rebuilt);
        Assert.Equal(target, rebuilt);

        entry[^1] ^= 1; // the last data byte is covered by the entry checksum
        Assert.False(LogEntryHeader.VerifyChecksum(entry));
    }
}
