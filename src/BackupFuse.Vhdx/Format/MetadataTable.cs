using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// The 64 KiB metadata table at the start of the metadata region: a 32-byte header and up to 2047 entries.
/// It has no checksum.
/// </summary>
public sealed record MetadataTable(IReadOnlyList<MetadataTableEntry> Entries)
{
    /// <summary>Size of the table.</summary>
    public const int Size = 64 * 1024;

    /// <summary>Size of the table header before the entries.</summary>
    public const int HeaderSize = 32;

    /// <summary>Largest allowed entry count.</summary>
    public const int MaxEntries = 2047;

    /// <summary>The signature bytes "metadata".</summary>
    public static ReadOnlySpan<byte> Signature => "metadata"u8;

    /// <summary>Byte offsets of the header fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"metadata".</summary>
        public const int Signature = 0;

        /// <summary>u16, 0.</summary>
        public const int Reserved = 8;

        /// <summary>u16.</summary>
        public const int EntryCount = 10;

        /// <summary>20 bytes of 0.</summary>
        public const int Reserved2 = 12;

        /// <summary>First entry.</summary>
        public const int Entries = HeaderSize;
    }

    /// <summary>A table without entries.</summary>
    public static MetadataTable Empty { get; } = new(Array.Empty<MetadataTableEntry>());

    /// <summary>Parses a table; false when the signature is wrong; an impossible entry count raises <see cref="InvalidDataException"/>.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out MetadataTable table)
    {
        table = Empty;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.EntryCount..]);
        if (count > MaxEntries)
        {
            throw new InvalidDataException($"VHDX metadata table: entry count {count} exceeds {MaxEntries}");
        }

        var entries = new MetadataTableEntry[count];
        for (int i = 0; i < entries.Length; i++)
        {
            MetadataTableEntry.TryRead(source[(FieldOffsets.Entries + (i * MetadataTableEntry.Size))..], out entries[i]);
        }

        table = new MetadataTable(entries);
        return true;
    }

    /// <summary>Writes the 64 KiB (unused space zero).</summary>
    public void Write(Span<byte> destination)
    {
        if (Entries.Count > MaxEntries)
        {
            throw new InvalidOperationException($"a metadata table holds at most {MaxEntries} entries");
        }

        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.EntryCount..], (ushort)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            Entries[i].Write(destination[(FieldOffsets.Entries + (i * MetadataTableEntry.Size))..]);
        }
    }

    /// <summary>The system (IsUser = 0) entry with <paramref name="itemId"/>, or null.</summary>
    public MetadataTableEntry? FindSystemItem(Guid itemId)
    {
        foreach (var e in Entries)
        {
            if (e.ItemId == itemId && !e.IsUser)
            {
                return e;
            }
        }

        return null;
    }
}
