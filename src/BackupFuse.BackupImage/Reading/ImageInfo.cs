using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Reading;

/// <summary>What `info` shows about one image; everything comes from the header and trailer.</summary>
/// <param name="Path">The image file.</param>
/// <param name="Id">Identity of the image.</param>
/// <param name="ParentId">Identity of the parent, <see cref="Guid.Empty"/> for a full backup.</param>
/// <param name="FormatVersion">"major.minor".</param>
/// <param name="CreatedUtc">When the backup was taken.</param>
/// <param name="DiskSize">Size of the disk.</param>
/// <param name="ChunkSize">Chunk size.</param>
/// <param name="Codec">Compression.</param>
/// <param name="Encryption">Encryption method.</param>
/// <param name="FileSize">Size of the image file.</param>
/// <param name="PayloadBytes">Bytes of stored chunk payloads.</param>
/// <param name="IndexBytes">Bytes of index pages and directory.</param>
/// <param name="ChunkCount">Chunks of the disk.</param>
/// <param name="DataChunks">Chunks this image stores data for.</param>
/// <param name="ZeroChunks">Chunks this image marks as zeros.</param>
/// <param name="AbsentChunks">Chunks not in this image (parent answers; in a full image they read as zeros).</param>
/// <param name="UniquePayloads">Distinct payloads stored (less than DataChunks when identical chunks were deduplicated).</param>
/// <param name="ParentBound">
/// Whether the image is bound to its parent's content (format 1.1; checked when the chain is opened). False for a full
/// image and for an incremental written by an older version, whose parent is identified by id alone.
/// </param>
public sealed record ImageInfo(
    string Path,
    Guid Id,
    Guid ParentId,
    string FormatVersion,
    DateTime CreatedUtc,
    long DiskSize,
    int ChunkSize,
    ChunkCodec Codec,
    EncryptionMethod Encryption,
    long FileSize,
    long PayloadBytes,
    long IndexBytes,
    long ChunkCount,
    long DataChunks,
    long ZeroChunks,
    long AbsentChunks,
    long UniquePayloads,
    bool ParentBound)
{
    /// <summary>Whether this is a full backup.</summary>
    public bool IsFull => ParentId == Guid.Empty;

    /// <summary>Whether chunks are encrypted.</summary>
    public bool IsEncrypted => Encryption != EncryptionMethod.None;

    /// <summary>Plaintext bytes of the stored distinct chunks.</summary>
    public long UniqueDataBytes => UniquePayloads * (long)ChunkSize;

    /// <summary>Plaintext bytes of the distinct chunks / stored payload bytes (1.0 when nothing is stored).</summary>
    public double CompressionRatio => PayloadBytes == 0 ? 1.0 : (double)UniqueDataBytes / PayloadBytes;
}
