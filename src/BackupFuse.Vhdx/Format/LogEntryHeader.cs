using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// The 64-byte header of a log entry (first bytes of its first 4 KiB descriptor sector). The checksum covers the
/// whole entry (EntryLength bytes), so <see cref="TryRead"/> checks only the signature and shape;
/// <see cref="VerifyChecksum"/> / <see cref="StampChecksum"/> work on the full entry.
/// </summary>
public readonly record struct LogEntryHeader(
    uint EntryLength,
    uint Tail,
    ulong SequenceNumber,
    uint DescriptorCount,
    Guid LogGuid,
    ulong FlushedFileOffset,
    ulong LastFileOffset)
{
    /// <summary>Size of the header.</summary>
    public const int Size = 64;

    /// <summary>Log sectors are 4 KiB.</summary>
    public const int SectorSize = 4096;

    /// <summary>Descriptors that fit in the first descriptor sector after the header.</summary>
    public const int DescriptorsInFirstSector = (SectorSize - Size) / 32;

    /// <summary>The signature bytes "loge".</summary>
    public static ReadOnlySpan<byte> Signature => "loge"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"loge".</summary>
        public const int Signature = 0;

        /// <summary>CRC-32C over EntryLength bytes with this field zeroed.</summary>
        public const int Checksum = 4;

        /// <summary>u32, multiple of 4 KiB.</summary>
        public const int EntryLength = 8;

        /// <summary>u32.</summary>
        public const int Tail = 12;

        /// <summary>u64.</summary>
        public const int SequenceNumber = 16;

        /// <summary>u32.</summary>
        public const int DescriptorCount = 24;

        /// <summary>u32, 0.</summary>
        public const int Reserved = 28;

        /// <summary>GUID.</summary>
        public const int LogGuid = 32;

        /// <summary>u64.</summary>
        public const int FlushedFileOffset = 48;

        /// <summary>u64.</summary>
        public const int LastFileOffset = 56;
    }

    /// <summary>Descriptor sectors an entry with <paramref name="descriptorCount"/> descriptors needs (never 0).</summary>
    public static int DescriptorSectors(uint descriptorCount) => (int)((descriptorCount + 2 + 127) / 128);

    /// <summary>Parses the header; false for a wrong signature, a zero sequence number or a length that is not a 4 KiB multiple.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogEntryHeader header)
    {
        header = default;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        header = new LogEntryHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.EntryLength..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Tail..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.SequenceNumber..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.DescriptorCount..]),
            new Guid(source.Slice(FieldOffsets.LogGuid, 16)),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.FlushedFileOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.LastFileOffset..]));
        return header.SequenceNumber != 0 && header.EntryLength != 0 && header.EntryLength % SectorSize == 0
            && (ulong)header.DescriptorCount * 32 <= header.EntryLength;
    }

    /// <summary>Writes the 64 bytes with the checksum field zero (stamp it once the whole entry is built).</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.EntryLength..], EntryLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Tail..], Tail);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.SequenceNumber..], SequenceNumber);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.DescriptorCount..], DescriptorCount);
        LogGuid.TryWriteBytes(destination[FieldOffsets.LogGuid..]);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.FlushedFileOffset..], FlushedFileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.LastFileOffset..], LastFileOffset);
    }

    /// <summary>Whether the checksum of a complete entry (its EntryLength bytes) is right.</summary>
    public static bool VerifyChecksum(ReadOnlySpan<byte> entry) => Crc32C.Verify(entry, FieldOffsets.Checksum);

    /// <summary>Computes and stores the checksum of a complete entry.</summary>
    public static void StampChecksum(Span<byte> entry) => Crc32C.Stamp(entry, FieldOffsets.Checksum);
}
