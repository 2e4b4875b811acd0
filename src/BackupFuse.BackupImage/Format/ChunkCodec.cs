namespace BackupFuse.BackupImage.Format;

/// <summary>How the chunks of an image are compressed (one codec per image, recorded in the header).</summary>
public enum ChunkCodec : byte
{
    /// <summary>Chunks are stored as they are.</summary>
    None = 0,

    /// <summary>Raw Deflate (RFC 1951) per chunk; a chunk that does not shrink is stored raw and flagged.</summary>
    Deflate = 1,

    /// <summary>One zstd frame (RFC 8878) per chunk, through the system's libzstd; a chunk that does not shrink is stored raw and flagged.</summary>
    Zstd = 2,
}
