namespace BackupFuse.Vhdx.Format;

/// <summary>State of a sector bitmap BAT entry (bits 0-2).</summary>
public enum SectorBitmapState : byte
{
    /// <summary>No bitmap (the only valid value in fixed/dynamic files).</summary>
    NotPresent = 0,

    /// <summary>A 1 MiB bitmap at the entry's file offset (differencing only).</summary>
    Present = 6,
}
