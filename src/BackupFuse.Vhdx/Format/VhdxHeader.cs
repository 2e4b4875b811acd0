using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// One of the two 4 KiB headers (at 64 KiB and 128 KiB). The valid header with the larger sequence number is
/// the current one; the checksum covers all 4096 bytes.
/// </summary>
public readonly record struct VhdxHeader(
    ulong SequenceNumber,
    Guid FileWriteGuid,
    Guid DataWriteGuid,
    Guid LogGuid,
    ushort LogVersion,
    ushort Version,
    uint LogLength,
    ulong LogOffset)
{
    /// <summary>Size of the structure, all covered by the checksum.</summary>
    public const int Size = 4096;

    /// <summary>The only version this format defines.</summary>
    public const ushort CurrentVersion = 1;

    /// <summary>File offset of header 1.</summary>
    public const long Header1Offset = 64 * 1024;

    /// <summary>File offset of header 2.</summary>
    public const long Header2Offset = 128 * 1024;

    /// <summary>The signature bytes "head".</summary>
    public static ReadOnlySpan<byte> Signature => "head"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"head".</summary>
        public const int Signature = 0;

        /// <summary>CRC-32C over the 4096 bytes with this field zeroed.</summary>
        public const int Checksum = 4;

        /// <summary>u64.</summary>
        public const int SequenceNumber = 8;

        /// <summary>GUID.</summary>
        public const int FileWriteGuid = 16;

        /// <summary>GUID.</summary>
        public const int DataWriteGuid = 32;

        /// <summary>GUID; all zero means the log is empty.</summary>
        public const int LogGuid = 48;

        /// <summary>u16, must be 0.</summary>
        public const int LogVersion = 64;

        /// <summary>u16, must be 1.</summary>
        public const int Version = 66;

        /// <summary>u32, multiple of 1 MiB.</summary>
        public const int LogLength = 68;

        /// <summary>u64, multiple of 1 MiB.</summary>
        public const int LogOffset = 72;

        /// <summary>Start of the 4016 reserved bytes.</summary>
        public const int Reserved = 80;
    }

    /// <summary>Parses a header; false when the signature or checksum is wrong (the slot is not valid).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out VhdxHeader header)
    {
        header = default;
        if (source.Length < Size)
        {
            return false;
        }

        source = source[..Size];
        if (!source.StartsWith(Signature) || !Crc32C.Verify(source, FieldOffsets.Checksum))
        {
            return false;
        }

        header = new VhdxHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.SequenceNumber..]),
            new Guid(source.Slice(FieldOffsets.FileWriteGuid, 16)),
            new Guid(source.Slice(FieldOffsets.DataWriteGuid, 16)),
            new Guid(source.Slice(FieldOffsets.LogGuid, 16)),
            BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.LogVersion..]),
            BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.Version..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.LogLength..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.LogOffset..]));
        return true;
    }

    /// <summary>Writes the 4096 bytes (reserved bytes zero) with a correct checksum.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.SequenceNumber..], SequenceNumber);
        FileWriteGuid.TryWriteBytes(destination[FieldOffsets.FileWriteGuid..]);
        DataWriteGuid.TryWriteBytes(destination[FieldOffsets.DataWriteGuid..]);
        LogGuid.TryWriteBytes(destination[FieldOffsets.LogGuid..]);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.LogVersion..], LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.Version..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.LogLength..], LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.LogOffset..], LogOffset);
        Crc32C.Stamp(destination, FieldOffsets.Checksum);
    }
}
