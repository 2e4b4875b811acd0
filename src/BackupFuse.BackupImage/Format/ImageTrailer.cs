using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - The trailer is the last 128 bytes of a .bfi file and is written last. A file without a valid trailer is not an
//   image: that is how a truncated or half-written image (crash, full disk, broken pipe) is recognised.
// - It repeats the image id so a trailer glued onto another image's body is caught, and it pins the directory to end
//   exactly where the trailer starts, so any truncation or appended garbage is caught before the index is touched.
// - Parse keeps the reserved bytes, so WriteTo reproduces a parsed trailer exactly (a child's parent binding hashes it).

/// <summary>The fixed 128-byte trailer at the end of an image: where the index directory is, and the counts.</summary>
public sealed record ImageTrailer
{
    /// <summary>Size of the trailer on disk.</summary>
    public const int Size = 128;

    private const int ReservedOffset = 80;

    private const int ReservedLength = 124 - ReservedOffset;

    /// <summary>"BFIEND\r\n": the trailer magic.</summary>
    public static ReadOnlySpan<byte> Magic => "BFIEND\r\n"u8;

    /// <summary>Must equal the header's image id.</summary>
    public Guid ImageId { get; init; }

    /// <summary>File offset of the index directory.</summary>
    public long DirectoryOffset { get; init; }

    /// <summary>Number of directory entries (= non-empty index pages).</summary>
    public int DirectoryCount { get; init; }

    /// <summary>CRC-32C of the whole directory.</summary>
    public uint DirectoryCrc { get; init; }

    /// <summary>Index entries of kind Data (including entries that share a deduplicated payload).</summary>
    public long DataChunks { get; init; }

    /// <summary>Index entries of kind Zero.</summary>
    public long ZeroChunks { get; init; }

    /// <summary>Distinct stored payloads.</summary>
    public long UniquePayloads { get; init; }

    /// <summary>Bytes of stored payloads (compressed, with GCM tags when encrypted).</summary>
    public long PayloadBytes { get; init; }

    /// <summary>Bytes of index pages plus the directory.</summary>
    public long IndexBytes { get; init; }

    /// <summary>Bytes 80..123 as read (zeros when written by this version); kept so that WriteTo reproduces a parsed trailer.</summary>
    public byte[] Reserved { get; init; } = new byte[ReservedLength];

    /// <summary>Serializes the trailer with its CRC.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var b = destination[..Size];
        b.Clear();
        Magic.CopyTo(b);
        ImageId.TryWriteBytes(b.Slice(8, 16));
        BinaryPrimitives.WriteInt64LittleEndian(b[24..], DirectoryOffset);
        BinaryPrimitives.WriteInt32LittleEndian(b[32..], DirectoryCount);
        BinaryPrimitives.WriteUInt32LittleEndian(b[36..], DirectoryCrc);
        BinaryPrimitives.WriteInt64LittleEndian(b[40..], DataChunks);
        BinaryPrimitives.WriteInt64LittleEndian(b[48..], ZeroChunks);
        BinaryPrimitives.WriteInt64LittleEndian(b[56..], UniquePayloads);
        BinaryPrimitives.WriteInt64LittleEndian(b[64..], PayloadBytes);
        BinaryPrimitives.WriteInt64LittleEndian(b[72..], IndexBytes);
        Reserved.AsSpan(0, ReservedLength).CopyTo(b[ReservedOffset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(b[124..], Crc32C.Compute(b[..124]));
    }

    /// <summary>Parses and validates a trailer against its header and the file length.</summary>
    /// <exception cref="InvalidDataException">The trailer is missing, corrupt or inconsistent.</exception>
    public static ImageTrailer Parse(ReadOnlySpan<byte> b, ImageHeader header, long fileLength, string path)
    {
        if (!b[..8].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path}: no valid trailer at the end of the file: the image is truncated or was not completely written");
        }

        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(b[124..]);
        uint actual = Crc32C.Compute(b[..124]);
        if (stored != actual)
        {
            throw new InvalidDataException($"{path}: trailer checksum mismatch (stored 0x{stored:X8}, computed 0x{actual:X8}): the trailer is corrupt");
        }

        var t = new ImageTrailer
        {
            ImageId = new Guid(b.Slice(8, 16)),
            DirectoryOffset = BinaryPrimitives.ReadInt64LittleEndian(b[24..]),
            DirectoryCount = BinaryPrimitives.ReadInt32LittleEndian(b[32..]),
            DirectoryCrc = BinaryPrimitives.ReadUInt32LittleEndian(b[36..]),
            DataChunks = BinaryPrimitives.ReadInt64LittleEndian(b[40..]),
            ZeroChunks = BinaryPrimitives.ReadInt64LittleEndian(b[48..]),
            UniquePayloads = BinaryPrimitives.ReadInt64LittleEndian(b[56..]),
            PayloadBytes = BinaryPrimitives.ReadInt64LittleEndian(b[64..]),
            IndexBytes = BinaryPrimitives.ReadInt64LittleEndian(b[72..]),
            Reserved = b.Slice(ReservedOffset, ReservedLength).ToArray(),
        };
        long chunks = header.ChunkCount;
        long maxPages = (chunks + header.EntriesPerPage - 1) / header.EntriesPerPage;
        string? problem =
            t.ImageId != header.ImageId ? $"trailer belongs to image {t.ImageId}, header says {header.ImageId}" :
            t.DirectoryCount < 0 || t.DirectoryCount > maxPages ? $"directory count {t.DirectoryCount} is out of range 0..{maxPages}" :
            t.DirectoryOffset != fileLength - Size - ((long)t.DirectoryCount * IndexDirectoryEntry.Size) ? "the index directory does not end where the trailer starts (truncated or extended file)" :
            t.DirectoryOffset < ImageHeader.Size ? "the index directory overlaps the header" :
            t.DataChunks < 0 || t.ZeroChunks < 0 || t.DataChunks + t.ZeroChunks > chunks ? "chunk counts exceed the disk's chunk count" :
            t.UniquePayloads < 0 || t.UniquePayloads > t.DataChunks ? "payload count is out of range" :
            t.PayloadBytes < 0 || t.PayloadBytes > t.DirectoryOffset ? "payload byte count is out of range" :
            null;
        if (problem != null)
        {
            throw new InvalidDataException($"{path}: invalid trailer: {problem}");
        }

        return t;
    }
}
