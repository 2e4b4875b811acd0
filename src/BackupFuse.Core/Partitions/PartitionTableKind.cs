namespace BackupFuse.Core.Partitions;

/// <summary>Which partition table a synthesized disk carries.</summary>
public enum PartitionTableKind
{
    /// <summary>GUID partition table behind a protective MBR (the default).</summary>
    Gpt,

    /// <summary>A classic MBR with up to four primary partitions (disks up to 2 TiB), for guests that want one.</summary>
    Mbr,
}
