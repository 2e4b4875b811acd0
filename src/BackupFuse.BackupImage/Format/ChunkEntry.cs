using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Format;

/// <summary>What an image says about one chunk.</summary>
public enum ChunkKind : byte
{
    /// <summary>Not in this image: the parent answers (in a full image: reads as zeros).</summary>
    Absent = 0,

    /// <summary>A stored payload holds the chunk.</summary>
    Data = 1,

    /// <summary>The chunk reads as zeros; nothing is stored.</summary>
    Zero = 2,
}

/// <summary>Flags of a stored payload.</summary>
[Flags]
public enum ChunkFlags : byte
{
    /// <summary>Stored as plaintext (raw).</summary>
    None = 0,

    /// <summary>The payload is compressed with the image's codec (else raw: compression did not shrink it, or codec None).</summary>
    Compressed = 1,

    /// <summary>The payload is AES-256-GCM ciphertext followed by a 16-byte tag.</summary>
    Encrypted = 2,

    /// <summary>
    /// A raw, unencrypted payload followed by the CRC-32C of every 4 KiB sector of the chunk
    /// (<see cref="Format.SectorChecksums"/>), so that a part of the chunk can be read and checked on its own.
    /// </summary>
    SectorChecksums = 4,
}

/// <summary>
/// One 56-byte index entry. Data entries point at a payload (several entries may share one when deduplicated) and
/// carry the CRC-32C of the stored bytes and the SHA-256 of the plaintext chunk. Absent and Zero entries are all
/// zeros apart from the kind byte.
/// </summary>
public readonly record struct ChunkEntry(ChunkKind Kind, ChunkFlags Flags, long PayloadOffset, int StoredLength, uint Crc, ChunkHash Hash)
{
    /// <summary>Size on disk.</summary>
    public const int Size = 56;

    /// <summary>An absent entry.</summary>
    public static ChunkEntry Absent => default;

    /// <summary>A zero entry.</summary>
    public static ChunkEntry Zero => new(ChunkKind.Zero, ChunkFlags.None, 0, 0, 0, default);

    /// <summary>Serializes the entry.</summary>
    public void WriteTo(Span<byte> b)
    {
        b = b[..Size];
        b.Clear();
        BinaryPrimitives.WriteInt64LittleEndian(b, PayloadOffset);
        BinaryPrimitives.WriteInt32LittleEndian(b[8..], StoredLength);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], Crc);
        b[16] = (byte)Kind;
        b[17] = (byte)Flags;
        Hash.WriteTo(b[24..]);
    }

    /// <summary>Parses an entry (range checks against the file are the caller's).</summary>
    public static ChunkEntry Read(ReadOnlySpan<byte> b) => new(
        (ChunkKind)b[16],
        (ChunkFlags)b[17],
        BinaryPrimitives.ReadInt64LittleEndian(b),
        BinaryPrimitives.ReadInt32LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[12..]),
        ChunkHash.Read(b[24..]));
}
