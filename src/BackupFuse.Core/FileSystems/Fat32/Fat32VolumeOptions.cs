namespace BackupFuse.Core.FileSystems.Fat32;

/// <summary>How a <see cref="Fat32Volume"/> is laid out.</summary>
public sealed record Fat32VolumeOptions
{
    /// <summary>The volume label (up to 11 characters of what an 8.3 name may hold, or spaces); stored upper case.</summary>
    public string VolumeLabel { get; init; } = "BACKUPFUSE";

    /// <summary>What the volume serial number is derived from (e.g. the backup point's id): same seed, same serial.</summary>
    public string Seed { get; init; } = string.Empty;

    /// <summary>Free bytes to leave for the guest; null for the default, max(1 GiB, 25 % of the used bytes).</summary>
    public long? FreeSpaceHeadroom { get; init; }

    /// <summary>Bytes per cluster (a power of two, 512..32768); null to pick it from the volume size as fatgen103's table does.</summary>
    public int? ClusterSize { get; init; }

    /// <summary>Sectors before the volume on its disk (BPB_HiddSec), e.g. the partition's first LBA.</summary>
    public uint HiddenSectors { get; init; }
}
