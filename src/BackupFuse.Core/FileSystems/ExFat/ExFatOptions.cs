namespace BackupFuse.Core.FileSystems.ExFat;

/// <summary>How <see cref="ExFatVolume"/> lays out a volume; the same tree and options always give the same bytes.</summary>
public sealed record ExFatOptions
{
    /// <summary>The volume label (at most 11 UTF-16 units, none of the characters a file name may not hold); empty for none.</summary>
    public string VolumeLabel { get; init; } = string.Empty;

    /// <summary>Seed the volume serial number is derived from (e.g. the backup point's id), so it is stable.</summary>
    public Guid SerialSeed { get; init; }

    /// <summary>Free space to leave for the guest, in bytes; null for the default, max(1 GiB, 25 % of the used space).</summary>
    public long? FreeBytes { get; init; }

    /// <summary>Bytes per cluster (a power of two, 512 .. 32 MiB); null to choose by volume size (4 KiB up to 256 MiB, 32 KiB up to 32 GiB, 128 KiB beyond).</summary>
    public int? ClusterSize { get; init; }
}
