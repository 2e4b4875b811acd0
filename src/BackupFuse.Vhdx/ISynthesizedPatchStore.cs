namespace BackupFuse.Vhdx;

// Design notes:
// - Owned by the root (SynthesizedVhdx is its only caller); Differencing/DifferencingPatchStore implements it. So the
//   root never names a Differencing type and Differencing depends on the root, not the other way round.
// - Data flows one way: Write receives the unpatched synthesized bytes of every page it touches from the caller, so
//   a store never calls back into the synthesized file in the middle of a write.

/// <summary>
/// Byte-exact storage for writes to the NON-payload parts of a writable synthesized VHDX (headers, log area, metadata,
/// BAT, bytes past the end), kept as 4 KiB pages that override the synthesized bytes, plus the file's logical length
/// when a writer extended it. Thread-safe.
/// </summary>
public interface ISynthesizedPatchStore
{
    /// <summary>Page size of the store.</summary>
    const int PageSize = 4096;

    /// <summary>The synthesized file's length as extended by writers, 0 when it was never extended.</summary>
    long LogicalLength { get; }

    /// <summary>Records that the file is now <paramref name="length"/> bytes long (only ever grows).</summary>
    void GrowLogicalLength(long length);

    /// <summary>Start of the first patched page that intersects [<paramref name="offset"/>, <paramref name="end"/>), or -1.</summary>
    long FindNextPatch(long offset, long end);

    /// <summary>Copies the patched bytes that fall in [<paramref name="offset"/>, +buffer.Length) over <paramref name="buffer"/>.</summary>
    void Overlay(long offset, Span<byte> buffer);

    /// <summary>
    /// Stores <paramref name="data"/> at <paramref name="offset"/>. <paramref name="unpatchedPages"/> holds the
    /// synthesized bytes without patches of every page the write touches, from the page holding
    /// <paramref name="offset"/> on (<see cref="UnpatchedPagesLength"/> bytes); a page written for the first time
    /// starts from them. IOException when the store is full.
    /// </summary>
    void Write(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<byte> unpatchedPages);

    /// <summary>Makes every completed write durable.</summary>
    void Flush();

    /// <summary>Length of the whole pages a write of <paramref name="length"/> bytes at <paramref name="offset"/> touches.</summary>
    static int UnpatchedPagesLength(long offset, int length) =>
        (int)(BackupFuse.Core.BlockAlignment.AlignUp(offset + length, PageSize) - BackupFuse.Core.BlockAlignment.AlignDown(offset, PageSize));
}
