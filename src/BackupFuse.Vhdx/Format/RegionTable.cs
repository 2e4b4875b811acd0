using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// The 64 KiB region table (two identical copies at 192 KiB and 256 KiB): a 16-byte header and up to 2047 entries.
/// The checksum covers all 64 KiB.
/// </summary>
public sealed record RegionTable(IReadOnlyList<RegionTableEntry> Entries)
{
    /// <summary>Size of the table, all covered by the checksum.</summary>
    public const int Size = 64 * 1024;

    /// <summary>Size of the table header before the entries.</summary>
    public const int HeaderSize = 16;

    /// <summary>Largest allowed entry count.</summary>
    public const int MaxEntries = 2047;

    /// <summary>File offset of region table 1.</summary>
    public const long Table1Offset = 192 * 1024;

    /// <summary>File offset of region table 2.</summary>
    public const long Table2Offset = 256 * 1024;

    /// <summary>The signature bytes "regi".</summary>
    public static ReadOnlySpan<byte> Signature => "regi"u8;

    /// <summary>Byte offsets of the header fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"regi".</summary>
        public const int Signature = 0;

        /// <summary>CRC-32C over 64 KiB with this field zeroed.</summary>
        public const int Checksum = 4;

        /// <summary>u32.</summary>
        public const int EntryCount = 8;

        /// <summary>u32, 0.</summary>
        public const int Reserved = 12;

        /// <summary>First entry.</summary>
        public const int Entries = HeaderSize;
    }

    /// <summary>
    /// Parses a table; false when the signature or checksum is wrong. A table with a valid checksum but an
    /// impossible entry count raises <see cref="InvalidDataException"/>.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out RegionTable table)
    {
        table = Empty;
        if (source.Length < Size)
        {
            return false;
        }

        source = source[..Size];
        if (!source.StartsWith(Signature) || !Crc32C.Verify(source, FieldOffsets.Checksum))
        {
            return false;
        }

        uint count = BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.EntryCount..]);
        if (count > MaxEntries)
        {
            throw new InvalidDataException($"VHDX region table: entry count {count} exceeds {MaxEntries}");
        }

        var entries = new RegionTableEntry[count];
        for (int i = 0; i < entries.Length; i++)
        {
            RegionTableEntry.TryRead(source[(FieldOffsets.Entries + (i * RegionTableEntry.Size))..], out entries[i]);
        }

        table = new RegionTable(entries);
        return true;
    }

    /// <summary>A table without entries.</summary>
    public static RegionTable Empty { get; } = new(Array.Empty<RegionTableEntry>());

    /// <summary>Writes the 64 KiB (unused space zero) with a correct checksum.</summary>
    public void Write(Span<byte> destination)
    {
        if (Entries.Count > MaxEntries)
        {
            throw new InvalidOperationException($"a region table holds at most {MaxEntries} entries");
        }

        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.EntryCount..], (uint)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            Entries[i].Write(destination[(FieldOffsets.Entries + (i * RegionTableEntry.Size))..]);
        }

        Crc32C.Stamp(destination, FieldOffsets.Checksum);
    }

    /// <summary>The entry with <paramref name="guid"/>, or null.</summary>
    public RegionTableEntry? Find(Guid guid)
    {
        foreach (var e in Entries)
        {
            if (e.Guid == guid)
            {
                return e;
            }
        }

        return null;
    }
}
