using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>One 12-byte parent locator key/value entry: offsets (relative to the locator item) and byte lengths of UTF-16LE strings.</summary>
public readonly record struct ParentLocatorEntry(uint KeyOffset, uint ValueOffset, ushort KeyLength, ushort ValueLength)
{
    /// <summary>Size of an entry.</summary>
    public const int Size = 12;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>u32.</summary>
        public const int KeyOffset = 0;

        /// <summary>u32.</summary>
        public const int ValueOffset = 4;

        /// <summary>u16.</summary>
        public const int KeyLength = 8;

        /// <summary>u16.</summary>
        public const int ValueLength = 10;
    }

    /// <summary>Decodes an entry.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out ParentLocatorEntry entry)
    {
        entry = default;
        if (source.Length < Size)
        {
            return false;
        }

        entry = new ParentLocatorEntry(
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.KeyOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.ValueOffset..]),
            BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.KeyLength..]),
            BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.ValueLength..]));
        return true;
    }

    /// <summary>Writes the 12 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.KeyOffset..], KeyOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.ValueOffset..], ValueOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.KeyLength..], KeyLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.ValueLength..], ValueLength);
    }
}
