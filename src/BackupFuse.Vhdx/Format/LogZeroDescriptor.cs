using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>A 32-byte log "zero" descriptor: write ZeroLength zero bytes at FileOffset.</summary>
public readonly record struct LogZeroDescriptor(ulong ZeroLength, ulong FileOffset, ulong SequenceNumber)
{
    /// <summary>Size of a descriptor.</summary>
    public const int Size = 32;

    /// <summary>The signature bytes "zero".</summary>
    public static ReadOnlySpan<byte> Signature => "zero"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"zero".</summary>
        public const int Signature = 0;

        /// <summary>u32, 0.</summary>
        public const int Reserved = 4;

        /// <summary>u64, multiple of 4 KiB.</summary>
        public const int ZeroLength = 8;

        /// <summary>u64, multiple of 4 KiB.</summary>
        public const int FileOffset = 16;

        /// <summary>u64, equals the entry's.</summary>
        public const int SequenceNumber = 24;
    }

    /// <summary>Parses a descriptor; false for another signature or unaligned fields.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogZeroDescriptor descriptor)
    {
        descriptor = default;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        descriptor = new LogZeroDescriptor(
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.ZeroLength..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.FileOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.SequenceNumber..]));
        return descriptor.ZeroLength % 4096 == 0 && descriptor.FileOffset % 4096 == 0;
    }

    /// <summary>Writes the 32 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.ZeroLength..], ZeroLength);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.FileOffset..], FileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.SequenceNumber..], SequenceNumber);
    }
}
