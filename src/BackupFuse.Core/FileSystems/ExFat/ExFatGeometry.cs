namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - Where everything lies on the volume, all in 512-byte sectors: main boot region (sectors 0..11), backup boot region
//   (12..23), one FAT at 1 MiB, the cluster heap aligned to 1 MiB and to the cluster size. In the heap: the allocation
//   bitmap from cluster 2, the up-case table after it, then the tree's runs (root directory first).
// - The bitmap's size depends on the cluster count, which includes the bitmap: solved in closed form, so the bitmap
//   run is exactly as long as its DataLength needs (no spare allocated cluster fsck would call lost).
// - Immutable; thread-safe.

/// <summary>The layout numbers of a synthesized exFAT volume.</summary>
internal sealed class ExFatGeometry
{
    /// <summary>Bytes per sector (the volume always uses 512).</summary>
    public const int SectorSize = 512;

    /// <summary>Sectors of one boot region (boot sector, 8 extended, OEM, reserved, checksum).</summary>
    public const int BootRegionSectors = 12;

    /// <summary>The largest cluster count exFAT allows.</summary>
    public const long MaxClusterCount = 0xFFFFFFF5;

    private const long Alignment = 2048; // sectors: 1 MiB

    /// <summary>Lays out a heap of <paramref name="treeClusters"/> used and <paramref name="freeClusters"/> free clusters.</summary>
    /// <exception cref="InvalidDataException">The volume would exceed exFAT's cluster count.</exception>
    public ExFatGeometry(int clusterSize, long treeClusters, long freeClusters)
    {
        ClusterSize = clusterSize;
        SectorsPerClusterShift = System.Numerics.BitOperations.Log2((uint)(clusterSize / SectorSize));
        UpcaseClusters = Ceil(ExFatUpcaseTable.Length, clusterSize);
        // The smallest bitmap that covers itself and the rest: bm + rest <= bm * 8 * clusterSize; then also
        // (bm - 1) * 8 * clusterSize < bm + rest, so the bitmap is exactly ceil(count / 8) bytes rounded to clusters.
        long rest = UpcaseClusters + treeClusters + freeClusters;
        long bitmapClusters = Math.Max(1, Ceil(rest, (8L * clusterSize) - 1));
        long count = bitmapClusters + rest;
        if (count > MaxClusterCount)
        {
            throw new InvalidDataException($"the exFAT volume would need {count} clusters of {clusterSize} bytes, more than exFAT's {MaxClusterCount}; choose a larger cluster size");
        }

        ClusterCount = count;
        BitmapClusters = bitmapClusters;
        FatOffset = Alignment;
        FatLength = Ceil((count + 2) * 4, SectorSize);
        long align = Math.Max(Alignment, clusterSize / SectorSize);
        HeapOffset = Ceil(FatOffset + FatLength, align) * align;
        VolumeSectors = HeapOffset + (count << SectorsPerClusterShift);
    }

    /// <summary>Bytes per cluster.</summary>
    public int ClusterSize { get; }

    /// <summary>log2(sectors per cluster).</summary>
    public int SectorsPerClusterShift { get; }

    /// <summary>Clusters in the heap.</summary>
    public long ClusterCount { get; }

    /// <summary>Clusters of the allocation bitmap (from cluster 2).</summary>
    public long BitmapClusters { get; }

    /// <summary>Bytes of the allocation bitmap (one bit per heap cluster).</summary>
    public long BitmapBytes => Ceil(ClusterCount, 8);

    /// <summary>Clusters of the up-case table.</summary>
    public long UpcaseClusters { get; }

    /// <summary>First cluster of the up-case table.</summary>
    public long UpcaseCluster => 2 + BitmapClusters;

    /// <summary>First cluster of the tree's runs (the root directory).</summary>
    public long TreeCluster => UpcaseCluster + UpcaseClusters;

    /// <summary>First sector of the FAT.</summary>
    public long FatOffset { get; }

    /// <summary>Sectors of the FAT.</summary>
    public long FatLength { get; }

    /// <summary>First sector of the cluster heap.</summary>
    public long HeapOffset { get; }

    /// <summary>Sectors of the whole volume.</summary>
    public long VolumeSectors { get; }

    /// <summary>Byte offset of cluster <paramref name="cluster"/>.</summary>
    public long ClusterOffset(long cluster) => (HeapOffset * SectorSize) + ((cluster - 2) * ClusterSize);

    /// <summary>ceil(a / b).</summary>
    public static long Ceil(long a, long b) => (a + b - 1) / b;
}
