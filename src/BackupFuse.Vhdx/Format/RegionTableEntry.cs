using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>One 32-byte region table entry: a region's GUID, its place in the file and whether it is required.</summary>
public readonly record struct RegionTableEntry(Guid Guid, ulong FileOffset, uint Length, bool Required)
{
    /// <summary>Size of an entry.</summary>
    public const int Size = 32;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>GUID.</summary>
        public const int Guid = 0;

        /// <summary>u64, multiple of 1 MiB.</summary>
        public const int FileOffset = 16;

        /// <summary>u32, multiple of 1 MiB.</summary>
        public const int Length = 24;

        /// <summary>u32; bit 0 = Required.</summary>
        public const int Required = 28;
    }

    /// <summary>Decodes an entry (an entry has no signature or checksum of its own; the table's CRC covers it).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out RegionTableEntry entry)
    {
        entry = default;
        if (source.Length < Size)
        {
            return false;
        }

        entry = new RegionTableEntry(
            new Guid(source.Slice(FieldOffsets.Guid, 16)),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.FileOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Length..]),
            (BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Required..]) & 1) != 0);
        return true;
    }

    /// <summary>Writes the 32 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        Guid.TryWriteBytes(destination[FieldOffsets.Guid..]);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FieldOffsets.FileOffset..], FileOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Length..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Required..], Required ? 1u : 0u);
    }
}
