namespace BackupFuse.Core.Partitions;

/// <summary>Well-known partition type identifiers.</summary>
public static class PartitionTypes
{
    /// <summary>GPT "Linux filesystem data".</summary>
    public static readonly Guid LinuxFileSystem = new("0FC63DAF-8483-4772-8E79-3D69D8477DE4");

    /// <summary>GPT "Microsoft basic data" (NTFS, FAT, exFAT).</summary>
    public static readonly Guid MicrosoftBasicData = new("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");

    /// <summary>MBR type 0x83, Linux.</summary>
    public const byte MbrLinux = 0x83;

    /// <summary>MBR type 0x07, NTFS / exFAT (IFS).</summary>
    public const byte MbrNtfs = 0x07;

    /// <summary>MBR type 0x0C, FAT32 with LBA.</summary>
    public const byte MbrFat32Lba = 0x0C;

    /// <summary>The MBR type byte that matches a GPT type (Linux unless it is Microsoft basic data).</summary>
    public static byte MbrTypeFor(Guid gptType) => gptType == MicrosoftBasicData ? MbrNtfs : MbrLinux;
}
