namespace BackupFuse.Core;

/// <summary>What a layer holds for a run of bytes.</summary>
public enum ExtentKind : byte
{
    /// <summary>This layer holds nothing here: the layer below answers (reads as zeros at the bottom).</summary>
    Unallocated,

    /// <summary>This layer says the run reads as zeros.</summary>
    Zero,

    /// <summary>This layer holds data for the run.</summary>
    Data,
}

/// <summary>A run of bytes with one status.</summary>
public readonly record struct Extent(long Offset, long Length, ExtentKind Kind)
{
    /// <summary>First byte after the run.</summary>
    public long End => Offset + Length;
}
