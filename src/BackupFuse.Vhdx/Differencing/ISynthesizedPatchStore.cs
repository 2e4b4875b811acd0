namespace BackupFuse.Vhdx.Differencing;

/// <summary>Fills <paramref name="page"/> with the unpatched bytes of the synthesized file at <paramref name="pageOffset"/>.</summary>
public delegate void BasePageReader(long pageOffset, Span<byte> page);

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
    /// Stores <paramref name="data"/> at <paramref name="offset"/>. A page written for the first time starts from
    /// <paramref name="readBase"/>. IOException when the store is full.
    /// </summary>
    void Write(long offset, ReadOnlySpan<byte> data, BasePageReader readBase);

    /// <summary>Makes every completed write durable.</summary>
    void Flush();
}
