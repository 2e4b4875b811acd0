namespace BackupFuse.Vhdx.Formats;

/// <summary>
/// The CHS geometry of a VHD footer, computed from the disk size exactly as the VHD specification's appendix
/// ("CHS calculation") does; disks beyond 65535 x 16 x 255 sectors get that maximum.
/// </summary>
public readonly record struct VhdGeometry(ushort Cylinders, byte Heads, byte SectorsPerTrack)
{
    /// <summary>The largest geometry (65535 x 16 x 255 sectors, about 127 GiB).</summary>
    public const long MaxSectors = 65535L * 16 * 255;

    /// <summary>Sectors the geometry addresses.</summary>
    public long TotalSectors => (long)Cylinders * Heads * SectorsPerTrack;

    /// <summary>The geometry for a disk of <paramref name="totalSectors"/> 512-byte sectors.</summary>
    public static VhdGeometry FromTotalSectors(long totalSectors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(totalSectors);
        totalSectors = Math.Min(totalSectors, MaxSectors);
        long sectorsPerTrack, heads, cylinderTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectorsPerTrack = 255;
            heads = 16;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
        }
        else
        {
            sectorsPerTrack = 17;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
            heads = Math.Max(4, (cylinderTimesHeads + 1023) / 1024);
            if (cylinderTimesHeads >= heads * 1024 || heads > 16)
            {
                sectorsPerTrack = 31;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }

            if (cylinderTimesHeads >= heads * 1024)
            {
                sectorsPerTrack = 63;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
        }

        return new VhdGeometry((ushort)(cylinderTimesHeads / heads), (byte)heads, (byte)sectorsPerTrack);
    }
}
