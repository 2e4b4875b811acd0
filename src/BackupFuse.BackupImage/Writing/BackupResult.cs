namespace BackupFuse.BackupImage.Writing;

/// <summary>What a finished backup wrote.</summary>
/// <param name="Destination">The image path ("-" or a description for streams).</param>
/// <param name="ImageId">Identity of the new image.</param>
/// <param name="ParentId">Identity of its parent (<see cref="Guid.Empty"/> for a full backup).</param>
/// <param name="DiskSize">Size of the source disk.</param>
/// <param name="ImageSize">Bytes written to the image.</param>
/// <param name="DataChunks">Chunks stored as data (including deduplicated references).</param>
/// <param name="ZeroChunks">Chunks recorded as zeros.</param>
/// <param name="AbsentChunks">Chunks not stored (unchanged from the parent, or holes/zeros in a full backup).</param>
/// <param name="UniquePayloads">Payloads actually stored.</param>
/// <param name="PayloadBytes">Bytes of stored payloads.</param>
/// <param name="SourceBytesRead">Bytes read from the source (holes are not read).</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record BackupResult(
    string Destination,
    Guid ImageId,
    Guid ParentId,
    long DiskSize,
    long ImageSize,
    long DataChunks,
    long ZeroChunks,
    long AbsentChunks,
    long UniquePayloads,
    long PayloadBytes,
    long SourceBytesRead,
    TimeSpan Elapsed)
{
    /// <summary>For a volume: its file system, and whether only its used blocks were read (or why not). Null for a disk.</summary>
    public string? VolumeNote { get; init; }

    /// <summary>The result of a finished image written by <paramref name="writer"/> under <paramref name="header"/>.</summary>
    internal static BackupResult Of(string destination, Format.ImageHeader header, ImageStreamWriter writer, long sourceBytesRead, TimeSpan elapsed) =>
        new(destination, header.ImageId, header.ParentId, header.DiskSize, writer.Position, writer.DataChunks, writer.ZeroChunks,
            header.ChunkCount - writer.DataChunks - writer.ZeroChunks, writer.UniquePayloads, writer.PayloadBytes, sourceBytesRead, elapsed);
}
