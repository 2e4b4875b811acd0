using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Format;

/// <summary>
/// One 24-byte entry of the index directory: where the index page for a run of chunks is stored. Only non-empty pages
/// have an entry; entries are sorted by page number, strictly ascending.
/// </summary>
/// <param name="PageNumber">Page number (page p covers chunks p*EntriesPerPage .. (p+1)*EntriesPerPage-1).</param>
/// <param name="StoredLength">Bytes of the stored page (EntriesPerPage*56, plus a 16-byte GCM tag when encrypted).</param>
/// <param name="Offset">File offset of the stored page.</param>
/// <param name="Crc">CRC-32C of the stored page bytes.</param>
public readonly record struct IndexDirectoryEntry(uint PageNumber, int StoredLength, long Offset, uint Crc)
{
    /// <summary>Size of an entry on disk.</summary>
    public const int Size = 24;

    /// <summary>Serializes the entry.</summary>
    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, PageNumber);
        BinaryPrimitives.WriteInt32LittleEndian(b[4..], StoredLength);
        BinaryPrimitives.WriteInt64LittleEndian(b[8..], Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[16..], Crc);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], 0);
    }

    /// <summary>Parses an entry (range checks are the caller's: they need the header and trailer).</summary>
    public static IndexDirectoryEntry Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(b),
        BinaryPrimitives.ReadInt32LittleEndian(b[4..]),
        BinaryPrimitives.ReadInt64LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[16..]));
}
