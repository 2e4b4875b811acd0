namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - What MetadataJournal needs to know to commit a batch larger than one log entry in dependency order: which
//   sectors belong to a table that points at other metadata sectors (those go last), and which entries of a table
//   must reach the disk before the rest of it (the BAT's sector-bitmap entries: a partially present block's entry
//   may only become durable once its chunk's bitmap entry is). Nothing else about the table.
// - Implementations are called under the journal's flush lock, not under its metadata lock: they may only look at
//   their fixed geometry (offsets, entry layout), never at the sector images.

/// <summary>A metadata structure of a differencing file whose sectors point at other metadata sectors (BAT, patch index).</summary>
internal interface IJournalTable
{
    /// <summary>Whether some of this table's entries must be durable before the rest (see <see cref="CopyEarlyEntries"/>).</summary>
    bool HasEarlyEntries { get; }

    /// <summary>Whether the 4 KiB sector at file offset <paramref name="sectorOffset"/> belongs to this table.</summary>
    bool Holds(long sectorOffset);

    /// <summary>
    /// Copies the early entries of <paramref name="image"/> (the new contents of the sector at
    /// <paramref name="sectorOffset"/>) over <paramref name="onDisk"/> (its contents on disk); true when that changed
    /// <paramref name="onDisk"/>.
    /// </summary>
    bool CopyEarlyEntries(long sectorOffset, ReadOnlySpan<byte> image, Span<byte> onDisk);
}
