using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// A 32-byte log "desc" descriptor: one 4 KiB sector at FileOffset is rebuilt from LeadingBytes (bytes 0-7), the
/// matching data sector's 4084 bytes (8-4091) and TrailingBytes (4092-4095).
/// </summary>
public readonly record struct LogDataDescriptor(uint TrailingBytes, ulong LeadingBytes, ulong FileOffset, ulong SequenceNumber)
{
    /// <summary>Size of a descriptor.</summary>
    public const int Size = 32;

    /// <summary>The signature bytes "desc".</summary>
    public static ReadOnlySpan<byte> Signature => "desc"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"desc".</summary>
        public const int Signature = 0;

        /// <summary>u32: bytes 4092-4095 of the target sector.</summary>
        public const int TrailingBytes = 4;

        /// <summary>u64: bytes 0-7 of the target sector.</summary>
        public const int LeadingBytes = 8;

        /// <summary>u64, multiple of 4 KiB.</summary>
        public const int FileOffset = 16;

        /// <summary>u64, equals the entry's.</summary>
        public const int SequenceNumber = 24;
    }

    /// <summary>Parses a descriptor; false for another signature or an unaligned offset.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogDataDescriptor descriptor)
    {
        descriptor = default;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        descriptor = new LogDataDescriptor(
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.TrailingBytes..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.LeadingBytes..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.FileOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.SequenceNumber..]));
        return descriptor.FileOffset % 4096 == 0;
    }

    /// <summary>Writes the 32 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.TrailingBytes..], TrailingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.LeadingBytes..], LeadingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.FileOffset..], FileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.SequenceNumber..], SequenceNumber);
    }
}
