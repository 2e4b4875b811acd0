namespace BackupFuse.BackupImage.Format;

/// <summary>The file system a volume image holds (header byte 176), as probed from its superblock at backup time.</summary>
public enum FileSystemKind : byte
{
    /// <summary>Not recognised (or not a volume image).</summary>
    Unknown = 0,

    /// <summary>ext2 (no journal).</summary>
    Ext2 = 1,

    /// <summary>ext3 (journal, no extents).</summary>
    Ext3 = 2,

    /// <summary>ext4.</summary>
    Ext4 = 3,

    /// <summary>XFS.</summary>
    Xfs = 4,

    /// <summary>Btrfs.</summary>
    Btrfs = 5,

    /// <summary>NTFS.</summary>
    Ntfs = 6,

    /// <summary>FAT12/16/32.</summary>
    Fat = 7,

    /// <summary>exFAT.</summary>
    ExFat = 8,
}
