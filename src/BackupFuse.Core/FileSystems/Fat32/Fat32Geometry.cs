namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - Where everything of a FAT32 volume lies (512-byte sectors): reserved region (boot sector, FSInfo, backup boot
//   sector at 6, its FSInfo copy at 7), two FATs, then the data region whose cluster 2 is the first. The volume has
//   exactly ClusterCount clusters: TotalSectors = reserved + 2 * FAT + ClusterCount * SectorsPerCluster, so the
//   spec's count-of-clusters formula gives ClusterCount back, and the FAT holds ClusterCount + 2 entries.
// - The reserved region is padded so the data region starts on a cluster boundary (aligned guest I/O).
// - FAT32 needs at least 65525 clusters (fatgen103: the type is decided by the count alone); we keep a margin of
//   16 above it because some drivers compare with off-by-a-few thresholds. At most 0x0FFFFFF5 - 2 clusters, and at
//   most 2^32 - 1 sectors (BPB_TotSec32): 2 TiB with 512-byte sectors, whichever is smaller.

/// <summary>The layout of a FAT32 volume.</summary>
public sealed record Fat32Geometry
{
    /// <summary>Bytes per sector (the only size we write).</summary>
    public const int SectorSize = 512;

    /// <summary>Fewest clusters a FAT32 volume may have (fatgen103).</summary>
    public const long Fat32MinClusters = 65525;

    /// <summary>Fewest clusters we lay out (the minimum plus a margin).</summary>
    public const long MinClusters = Fat32MinClusters + 16;

    /// <summary>Most clusters a FAT32 volume may have (cluster numbers up to 0x0FFFFFF6 are valid).</summary>
    public const long MaxClusters = 0x0FFFFFF5 - 2;

    private const int MinReservedSectors = 32;

    private Fat32Geometry(int clusterSize, long clusterCount)
    {
        ClusterSize = clusterSize;
        ClusterCount = clusterCount;
        FatSectors = ((clusterCount + 2) * 4 + SectorSize - 1) / SectorSize;
        int spc = SectorsPerCluster;
        long reserved = MinReservedSectors;
        reserved += (spc - ((reserved + (2 * FatSectors)) % spc)) % spc;
        ReservedSectors = (int)reserved;
        TotalSectors = ReservedSectors + (2 * FatSectors) + (clusterCount * spc);
    }

    /// <summary>Bytes per cluster.</summary>
    public int ClusterSize { get; }

    /// <summary>Sectors per cluster.</summary>
    public int SectorsPerCluster => ClusterSize / SectorSize;

    /// <summary>Clusters in the data region (numbered 2..ClusterCount+1).</summary>
    public long ClusterCount { get; }

    /// <summary>Sectors of one FAT.</summary>
    public long FatSectors { get; }

    /// <summary>Sectors before the first FAT.</summary>
    public int ReservedSectors { get; }

    /// <summary>Sectors of the whole volume.</summary>
    public long TotalSectors { get; }

    /// <summary>Byte offset of the first FAT.</summary>
    public long FatOffset => (long)ReservedSectors * SectorSize;

    /// <summary>Bytes of one FAT.</summary>
    public long FatBytes => FatSectors * SectorSize;

    /// <summary>Byte offset of cluster 2.</summary>
    public long DataOffset => FatOffset + (2 * FatBytes);

    /// <summary>Bytes of the whole volume.</summary>
    public long Length => TotalSectors * SectorSize;

    /// <summary>The byte offset of <paramref name="cluster"/>.</summary>
    public long ClusterOffset(long cluster) => DataOffset + ((cluster - 2) * ClusterSize);

    /// <summary>A volume of <paramref name="clusterCount"/> clusters (raised to <see cref="MinClusters"/>) of <paramref name="clusterSize"/> bytes.</summary>
    /// <exception cref="InvalidDataException">More clusters than a FAT32 volume can have (<see cref="MaxClustersFor"/>).</exception>
    public static Fat32Geometry Create(int clusterSize, long clusterCount)
    {
        long max = MaxClustersFor(clusterSize);
        if (clusterCount > max)
        {
            throw new InvalidDataException(
                $"{clusterCount} clusters of {clusterSize} bytes ({clusterCount * clusterSize >> 30} GiB): a FAT32 volume can have at most {max} ({max * clusterSize >> 30} GiB)");
        }

        return new Fat32Geometry(clusterSize, Math.Max(clusterCount, MinClusters));
    }

    /// <summary>The most clusters of <paramref name="clusterSize"/> bytes a FAT32 volume can have (cluster numbers, 2^32 - 1 sectors).</summary>
    public static long MaxClustersFor(int clusterSize)
    {
        if (clusterSize < SectorSize || clusterSize > 32768 || (clusterSize & (clusterSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(clusterSize), $"cluster size {clusterSize} is not a power of two from 512 to 32768");
        }

        // Each cluster costs SectorsPerCluster sectors plus 8 bytes of the two FATs; start from that estimate and
        // step down until the exact layout (reserved padding, FAT rounding) fits.
        long spc = clusterSize / SectorSize;
        long clusters = Math.Min(MaxClusters, (uint.MaxValue - MinReservedSectors - spc - 2) * SectorSize / ((spc * SectorSize) + 8));
        while (new Fat32Geometry(clusterSize, clusters).TotalSectors > uint.MaxValue)
        {
            clusters--;
        }

        return clusters;
    }

    /// <summary>The cluster size fatgen103's table gives a FAT32 volume of <paramref name="bytes"/> bytes.</summary>
    public static int ClusterSizeFor(long bytes) => (bytes / SectorSize) switch
    {
        <= 532_480 => 512,        // up to 260 MB (smaller than 32.5 MB is grown to the minimum cluster count)
        <= 16_777_216 => 4096,    // up to 8 GB
        <= 33_554_432 => 8192,    // up to 16 GB
        <= 67_108_864 => 16384,   // up to 32 GB
        _ => 32768,
    };
}
