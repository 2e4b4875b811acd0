namespace BackupFuse.Vhdx.Differencing;

/// <summary>What a differencing file holds, for <c>info</c>.</summary>
/// <param name="PayloadBlockSize">Payload block size.</param>
/// <param name="FullyPresentBlocks">Blocks held whole (state 6).</param>
/// <param name="PartiallyPresentBlocks">Blocks held sector by sector (state 7).</param>
/// <param name="SectorBitmapBlocks">Allocated 1 MiB sector bitmaps.</param>
/// <param name="ChangedBytes">Bytes of virtual disk the child answers for (whole blocks plus marked sectors).</param>
/// <param name="FileLength">Length of the differencing file.</param>
/// <param name="PatchedPages">4 KiB pages of the synthesized file's non-payload area that were written.</param>
/// <param name="PatchCapacity">How many such pages fit.</param>
/// <param name="SynthesizedLength">The synthesized file's length as extended by writers, 0 when never extended.</param>
public readonly record struct DifferencingStatistics(
    int PayloadBlockSize,
    long FullyPresentBlocks,
    long PartiallyPresentBlocks,
    long SectorBitmapBlocks,
    long ChangedBytes,
    long FileLength,
    int PatchedPages,
    int PatchCapacity,
    long SynthesizedLength)
{
    /// <summary>Allocated payload blocks.</summary>
    public long AllocatedBlocks => FullyPresentBlocks + PartiallyPresentBlocks;
}
