namespace BackupFuse.Core.FileSystems;

/// <summary>The file system a file-level backup point is presented in.</summary>
public enum SynthesizedFileSystemKind
{
    /// <summary>exFAT: no 4 GiB file limit; the default.</summary>
    ExFat = 0,

    /// <summary>FAT32 (with long file names), for old guests and firmware; files must be under 4 GiB.</summary>
    Fat32 = 1,
}
