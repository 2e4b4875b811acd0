using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Formats;

/// <summary>
/// The 512-byte header of a VMDK hosted sparse extent (VMware "Virtual Disk Format 1.1", SparseExtentHeader),
/// little-endian, magic "KDMV". Offsets and sizes are in 512-byte sectors.
/// </summary>
/// <param name="Version">1 (no zeroed-grain entries, no compression).</param>
/// <param name="Flags">Bit 0 valid newline test, bit 1 redundant grain directory in use, bit 16 compressed, bit 17 markers.</param>
/// <param name="Capacity">Disk size in sectors.</param>
/// <param name="GrainSize">Grain size in sectors.</param>
/// <param name="DescriptorOffset">Sector of the embedded descriptor.</param>
/// <param name="DescriptorSize">Sectors reserved for it.</param>
/// <param name="NumGtesPerGt">Entries per grain table (512).</param>
/// <param name="RgdOffset">Sector of the redundant grain directory.</param>
/// <param name="GdOffset">Sector of the grain directory.</param>
/// <param name="OverHead">Sectors before the first grain.</param>
/// <param name="UncleanShutdown">Set by a writer while it has the disk open.</param>
public readonly record struct SparseExtentHeader(uint Version, uint Flags, ulong Capacity, ulong GrainSize, ulong DescriptorOffset, ulong DescriptorSize,
    uint NumGtesPerGt, ulong RgdOffset, ulong GdOffset, ulong OverHead, bool UncleanShutdown)
{
    /// <summary>Header length.</summary>
    public const int Size = 512;

    /// <summary>The magic number "KDMV" as a little-endian u32.</summary>
    public const uint MagicNumber = 0x564D444B;

    /// <summary>Flag: the newline-detection characters are valid.</summary>
    public const uint ValidNewLineDetection = 1;

    /// <summary>Flag: a redundant grain directory (and tables) is kept.</summary>
    public const uint RedundantGrainTable = 2;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>u32 "KDMV".</summary>
        public const int Magic = 0;

        /// <summary>u32.</summary>
        public const int Version = 4;

        /// <summary>u32.</summary>
        public const int Flags = 8;

        /// <summary>u64.</summary>
        public const int Capacity = 12;

        /// <summary>u64.</summary>
        public const int GrainSize = 20;

        /// <summary>u64.</summary>
        public const int DescriptorOffset = 28;

        /// <summary>u64.</summary>
        public const int DescriptorSize = 36;

        /// <summary>u32.</summary>
        public const int NumGtesPerGt = 44;

        /// <summary>u64.</summary>
        public const int RgdOffset = 48;

        /// <summary>u64.</summary>
        public const int GdOffset = 56;

        /// <summary>u64.</summary>
        public const int OverHead = 64;

        /// <summary>u8.</summary>
        public const int UncleanShutdown = 72;

        /// <summary>'\n', ' ', '\r', '\n': a file moved in text mode is detected by these.</summary>
        public const int NewLineCharacters = 73;

        /// <summary>u16, 0 = none.</summary>
        public const int CompressAlgorithm = 77;
    }

    /// <summary>Decodes a header; false without the magic number.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out SparseExtentHeader value)
    {
        value = default;
        if (source.Length < Size || BinaryPrimitives.ReadUInt32LittleEndian(source) != MagicNumber)
        {
            return false;
        }

        value = new SparseExtentHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Version..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Flags..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.Capacity..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.GrainSize..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.DescriptorOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.DescriptorSize..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.NumGtesPerGt..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.RgdOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.GdOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[FieldOffsets.OverHead..]),
            source[FieldOffsets.UncleanShutdown] != 0);
        return true;
    }

    /// <summary>Writes the 512 bytes (newline characters included, no compression, zero padding).</summary>
    public void Write(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(d, MagicNumber);
        BinaryPrimitives.WriteUInt32LittleEndian(d[FieldOffsets.Version..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(d[FieldOffsets.Flags..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.Capacity..], Capacity);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.GrainSize..], GrainSize);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.DescriptorOffset..], DescriptorOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.DescriptorSize..], DescriptorSize);
        BinaryPrimitives.WriteUInt32LittleEndian(d[FieldOffsets.NumGtesPerGt..], NumGtesPerGt);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.RgdOffset..], RgdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.GdOffset..], GdOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(d[FieldOffsets.OverHead..], OverHead);
        d[FieldOffsets.UncleanShutdown] = UncleanShutdown ? (byte)1 : (byte)0;
        "\n \r\n"u8.CopyTo(d[FieldOffsets.NewLineCharacters..]);
    }
}
