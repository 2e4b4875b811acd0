using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>One 32-byte metadata table entry: item GUID, offset and length inside the metadata region, and flags.</summary>
public readonly record struct MetadataTableEntry(Guid ItemId, uint Offset, uint Length, bool IsUser, bool IsVirtualDisk, bool IsRequired)
{
    /// <summary>Size of an entry.</summary>
    public const int Size = 32;

    /// <summary>Flag bit: user metadata.</summary>
    public const uint IsUserFlag = 1;

    /// <summary>Flag bit: copied to a differencing child.</summary>
    public const uint IsVirtualDiskFlag = 2;

    /// <summary>Flag bit: a reader that does not know the item must not open the file.</summary>
    public const uint IsRequiredFlag = 4;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>GUID.</summary>
        public const int ItemId = 0;

        /// <summary>u32, relative to the metadata region, at least 64 KiB.</summary>
        public const int Offset = 16;

        /// <summary>u32, at most 1 MiB.</summary>
        public const int Length = 20;

        /// <summary>u32 flag word.</summary>
        public const int Flags = 24;

        /// <summary>u32, 0.</summary>
        public const int Reserved2 = 28;
    }

    /// <summary>The flag word.</summary>
    public uint Flags => (IsUser ? IsUserFlag : 0) | (IsVirtualDisk ? IsVirtualDiskFlag : 0) | (IsRequired ? IsRequiredFlag : 0);

    /// <summary>Decodes an entry (the metadata table has no checksum).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out MetadataTableEntry entry)
    {
        entry = default;
        if (source.Length < Size)
        {
            return false;
        }

        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Flags..]);
        entry = new MetadataTableEntry(
            new Guid(source.Slice(FieldOffsets.ItemId, 16)),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Offset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Length..]),
            (flags & IsUserFlag) != 0,
            (flags & IsVirtualDiskFlag) != 0,
            (flags & IsRequiredFlag) != 0);
        return true;
    }

    /// <summary>Writes the 32 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        destination.Clear();
        ItemId.TryWriteBytes(destination[FieldOffsets.ItemId..]);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Offset..], Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Length..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Flags..], Flags);
    }
}
