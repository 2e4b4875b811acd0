namespace BackupFuse.Vhdx;

/// <summary>What fills a run of the synthesized VHDX file.</summary>
public enum LayoutExtentKind : byte
{
    /// <summary>Precomputed structure bytes (header section, metadata table and items).</summary>
    Bytes,

    /// <summary>Block allocation table entries, computed per read.</summary>
    Bat,

    /// <summary>Virtual disk bytes, forwarded to the disk source.</summary>
    Payload,

    /// <summary>Reserved space, the empty log, region padding and the tail past the disk: reads as zeros.</summary>
    Zero,
}

/// <summary>
/// One run of the synthesized file. <paramref name="SourceOffset"/> is the offset inside what backs the run: the
/// layout's byte buffer for <see cref="LayoutExtentKind.Bytes"/>, the byte offset inside the BAT for
/// <see cref="LayoutExtentKind.Bat"/>, the disk offset for <see cref="LayoutExtentKind.Payload"/>, 0 for zeros.
/// </summary>
public readonly record struct LayoutExtent(long FileOffset, long Length, LayoutExtentKind Kind, long SourceOffset)
{
    /// <summary>First byte after the run.</summary>
    public long End => FileOffset + Length;
}
