using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - The 512-byte VHD footer (Virtual Hard Disk Image Format Specification, "Hard Disk Footer Format"), big-endian.
//   A fixed disk is its raw bytes followed by this footer. Only what a fixed disk uses is modelled; Write computes
//   the checksum (one's complement of the byte sum with the checksum field zero), TryRead verifies it.
// - Time stamp: seconds since 2000-01-01 00:00 UTC.

/// <summary>The footer of a VHD file.</summary>
/// <param name="Timestamp">Creation time, seconds since 2000-01-01 UTC.</param>
/// <param name="CreatorApplication">Four ASCII characters naming the writer.</param>
/// <param name="CreatorVersion">Writer version (major &lt;&lt; 16 | minor).</param>
/// <param name="OriginalSize">Size at creation, bytes.</param>
/// <param name="CurrentSize">Virtual disk size, bytes.</param>
/// <param name="Geometry">CHS geometry.</param>
/// <param name="DiskType">2 fixed, 3 dynamic, 4 differencing.</param>
/// <param name="UniqueId">Identifies the disk (stored in RFC 4122 byte order).</param>
public readonly record struct VhdFooter(uint Timestamp, string CreatorApplication, uint CreatorVersion, ulong OriginalSize, ulong CurrentSize,
    VhdGeometry Geometry, uint DiskType, Guid UniqueId)
{
    /// <summary>Footer length.</summary>
    public const int Size = 512;

    /// <summary>Disk type of a fixed disk.</summary>
    public const uint FixedDisk = 2;

    /// <summary>The footer's cookie.</summary>
    public static ReadOnlySpan<byte> Cookie => "conectix"u8;

    /// <summary>Features field: the "reserved" bit that must always be set.</summary>
    public const uint Features = 2;

    /// <summary>File format version 1.0.</summary>
    public const uint FileFormatVersion = 0x00010000;

    /// <summary>Creator host OS "Wi2k" (what every tool writes).</summary>
    public const uint CreatorHostOs = 0x5769326B;

    /// <summary>The epoch of <see cref="Timestamp"/>.</summary>
    public static readonly DateTime Epoch = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>8 bytes "conectix".</summary>
        public const int Cookie = 0;

        /// <summary>u32.</summary>
        public const int Features = 8;

        /// <summary>u32.</summary>
        public const int FileFormatVersion = 12;

        /// <summary>u64, all ones for a fixed disk.</summary>
        public const int DataOffset = 16;

        /// <summary>u32.</summary>
        public const int Timestamp = 24;

        /// <summary>4 bytes.</summary>
        public const int CreatorApplication = 28;

        /// <summary>u32.</summary>
        public const int CreatorVersion = 32;

        /// <summary>u32.</summary>
        public const int CreatorHostOs = 36;

        /// <summary>u64.</summary>
        public const int OriginalSize = 40;

        /// <summary>u64.</summary>
        public const int CurrentSize = 48;

        /// <summary>u16 cylinders, u8 heads, u8 sectors per track.</summary>
        public const int Geometry = 56;

        /// <summary>u32.</summary>
        public const int DiskType = 60;

        /// <summary>u32.</summary>
        public const int Checksum = 64;

        /// <summary>16 bytes.</summary>
        public const int UniqueId = 68;

        /// <summary>u8.</summary>
        public const int SavedState = 84;
    }

    /// <summary>Timestamp of <paramref name="utc"/> (clamped to the field's range).</summary>
    public static uint TimestampOf(DateTime utc) =>
        (uint)Math.Clamp((long)(utc.ToUniversalTime() - Epoch).TotalSeconds, 0, uint.MaxValue);

    /// <summary>The checksum of a footer: one's complement of the sum of its bytes, the checksum field counted as zero.</summary>
    public static uint Checksum(ReadOnlySpan<byte> footer)
    {
        uint sum = 0;
        for (int i = 0; i < Size; i++)
        {
            if (i < FieldOffsets.Checksum || i >= FieldOffsets.Checksum + 4)
            {
                sum += footer[i];
            }
        }

        return ~sum;
    }

    /// <summary>Decodes a footer; false when the cookie or the checksum is wrong.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out VhdFooter value)
    {
        value = default;
        if (source.Length < Size || !source.StartsWith(Cookie)
            || BinaryPrimitives.ReadUInt32BigEndian(source[FieldOffsets.Checksum..]) != Checksum(source))
        {
            return false;
        }

        var geometry = new VhdGeometry(BinaryPrimitives.ReadUInt16BigEndian(source[FieldOffsets.Geometry..]), source[FieldOffsets.Geometry + 2], source[FieldOffsets.Geometry + 3]);
        value = new VhdFooter(
            BinaryPrimitives.ReadUInt32BigEndian(source[FieldOffsets.Timestamp..]),
            System.Text.Encoding.ASCII.GetString(source.Slice(FieldOffsets.CreatorApplication, 4)),
            BinaryPrimitives.ReadUInt32BigEndian(source[FieldOffsets.CreatorVersion..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[FieldOffsets.OriginalSize..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[FieldOffsets.CurrentSize..]),
            geometry,
            BinaryPrimitives.ReadUInt32BigEndian(source[FieldOffsets.DiskType..]),
            new Guid(source.Slice(FieldOffsets.UniqueId, 16), bigEndian: true));
        return true;
    }

    /// <summary>Writes the 512 bytes, checksum included (a fixed disk's data offset is all ones).</summary>
    public void Write(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        Cookie.CopyTo(d);
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.Features..], Features);
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.FileFormatVersion..], FileFormatVersion);
        BinaryPrimitives.WriteUInt64BigEndian(d[FieldOffsets.DataOffset..], DiskType == FixedDisk ? ulong.MaxValue : 512);
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.Timestamp..], Timestamp);
        if (System.Text.Encoding.ASCII.GetBytes(CreatorApplication, d.Slice(FieldOffsets.CreatorApplication, 4)) != 4)
        {
            throw new ArgumentException("the creator application must be four ASCII characters");
        }

        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.CreatorVersion..], CreatorVersion);
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.CreatorHostOs..], CreatorHostOs);
        BinaryPrimitives.WriteUInt64BigEndian(d[FieldOffsets.OriginalSize..], OriginalSize);
        BinaryPrimitives.WriteUInt64BigEndian(d[FieldOffsets.CurrentSize..], CurrentSize);
        BinaryPrimitives.WriteUInt16BigEndian(d[FieldOffsets.Geometry..], Geometry.Cylinders);
        d[FieldOffsets.Geometry + 2] = Geometry.Heads;
        d[FieldOffsets.Geometry + 3] = Geometry.SectorsPerTrack;
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.DiskType..], DiskType);
        UniqueId.TryWriteBytes(d.Slice(FieldOffsets.UniqueId, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt32BigEndian(d[FieldOffsets.Checksum..], Checksum(d));
    }
}
