namespace BackupFuse.Vhdx.Format;

/// <summary>State of a payload block BAT entry (bits 0-2).</summary>
public enum PayloadBlockState : byte
{
    /// <summary>Not allocated: zeros in fixed/dynamic files, the parent's data in differencing files.</summary>
    NotPresent = 0,

    /// <summary>Contents undefined (read as zeros).</summary>
    Undefined = 1,

    /// <summary>Reads as zeros.</summary>
    Zero = 2,

    /// <summary>Unmapped by the host (read as zeros).</summary>
    Unmapped = 3,

    /// <summary>All data at the entry's file offset.</summary>
    FullyPresent = 6,

    /// <summary>Differencing only: per-sector choice through the chunk's sector bitmap.</summary>
    PartiallyPresent = 7,
}
