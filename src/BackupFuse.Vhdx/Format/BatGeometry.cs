using BackupFuse.Core;

namespace BackupFuse.Vhdx.Format;

// Design notes:
// - The one place that turns (virtual disk size, block size, logical sector size, has parent) into BAT arithmetic
//   (MS-VHDX 2.5 "BAT" and 2.5.1 "BAT Entry"). QEMU keeps the same
//   arithmetic in one function (vhdx_calc_bat_entries); every reader and writer of VHDX here (VhdxLayout,
//   VhdxReader, DifferencingVhdxFormat, Differencing/BlockAllocationTable) uses this type instead of its own copy.
// - The numbers:
//     ChunkRatio             = 2^23 * LogicalSectorSize / BlockSize    (payload blocks per 1 MiB sector bitmap)
//     PayloadBlockCount      = Ceil(VirtualDiskSize / BlockSize)       (NPB)
//     SectorBitmapBlockCount = Ceil(NPB / ChunkRatio)                  (NSB)
//     the BAT interleaves ChunkRatio payload entries and then the chunk's sector-bitmap entry:
//     payload block k -> index k + Floor(k / ChunkRatio); sector bitmap of chunk c -> c * (ChunkRatio + 1) + ChunkRatio.
// - Total BAT entries: the v1.00 spec formulas, which QEMU, 7-Zip and DiscUtils apply (and refuse files whose BAT
//   region is smaller): without a parent NPB + Floor((NPB - 1) / ChunkRatio) (the last entry locates the last
//   payload block), with a parent NSB * (ChunkRatio + 1) (the table reaches the last chunk's sector-bitmap entry).
//   The current MS-VHDX text (section 2.5) gives NPB + NSB and NSB * (CR + 1) - ((CR * NSB - NPB) mod CR); neither
//   is larger than NSB * (CR + 1), so BatLength, RoundUp(NSB * (ChunkRatio + 1) * 8, 1 MiB), satisfies every one
//   of them. It is the BAT region length every file written here gets, fixed or differencing alike.
// - Immutable value; no I/O. The constructor validates its inputs (callers have already reported bad files in
//   their own words, so a failure here is a programming error: ArgumentOutOfRangeException). The index methods do
//   no range checks: they are on every read's path, and the inverse (Locate) must also answer for the unused
//   entries past the last payload block. default(BatGeometry) is not a valid geometry.

/// <summary>The BAT arithmetic of a VHDX (MS-VHDX 2.5): chunk ratio, entry counts, region length and entry indices.</summary>
public readonly record struct BatGeometry
{
    /// <summary>Logical sectors per chunk: one 1 MiB sector bitmap holds 2^23 bits, one per sector.</summary>
    public const long SectorsPerChunk = 1L << 23;

    /// <summary>Size of a sector-bitmap block (and the BAT region's alignment).</summary>
    public const int SectorBitmapBlockSize = 1024 * 1024;

    /// <summary>Computes the geometry of a disk; every argument must be one the format allows.</summary>
    /// <param name="virtualDiskSize">Virtual Disk Size item: 1 byte to 64 TiB.</param>
    /// <param name="blockSize">File Parameters BlockSize: a power of two from 1 MiB to 256 MiB.</param>
    /// <param name="logicalSectorSize">Logical Sector Size item: 512 or 4096.</param>
    /// <param name="hasParent">File Parameters HasParent: a differencing file.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument the format does not allow.</exception>
    public BatGeometry(long virtualDiskSize, int blockSize, int logicalSectorSize, bool hasParent)
    {
        if (virtualDiskSize <= 0 || (ulong)virtualDiskSize > Format.VirtualDiskSize.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(virtualDiskSize), virtualDiskSize, "a VHDX disk holds 1 byte to 64 TiB");
        }

        if (blockSize <= 0 || !new FileParameters((uint)blockSize, false, hasParent).IsBlockSizeValid)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "not a power of two from 1 MiB to 256 MiB");
        }

        if (logicalSectorSize is not (512 or 4096))
        {
            throw new ArgumentOutOfRangeException(nameof(logicalSectorSize), logicalSectorSize, "not 512 or 4096");
        }

        VirtualDiskSize = virtualDiskSize;
        BlockSize = blockSize;
        LogicalSectorSize = logicalSectorSize;
        HasParent = hasParent;
        ChunkRatio = SectorsPerChunk * logicalSectorSize / blockSize;
        PayloadBlockCount = (virtualDiskSize + blockSize - 1) / blockSize;
        SectorBitmapBlockCount = (PayloadBlockCount + ChunkRatio - 1) / ChunkRatio;
    }

    /// <summary>Virtual disk size in bytes.</summary>
    public long VirtualDiskSize { get; }

    /// <summary>Payload block size in bytes.</summary>
    public int BlockSize { get; }

    /// <summary>Logical sector size in bytes.</summary>
    public int LogicalSectorSize { get; }

    /// <summary>Whether the file is a differencing file (decides <see cref="TotalBatEntries"/>).</summary>
    public bool HasParent { get; }

    /// <summary>Payload blocks per chunk (per sector-bitmap block): 2^23 * LogicalSectorSize / BlockSize.</summary>
    public long ChunkRatio { get; }

    /// <summary>Number of payload blocks (NPB): Ceil(VirtualDiskSize / BlockSize).</summary>
    public long PayloadBlockCount { get; }

    /// <summary>Number of sector-bitmap blocks (NSB): Ceil(NPB / ChunkRatio).</summary>
    public long SectorBitmapBlockCount { get; }

    /// <summary>BAT entries a file without a parent needs: NPB + Floor((NPB - 1) / ChunkRatio).</summary>
    public long TotalBatEntriesWithoutParent => PayloadBlockCount + ((PayloadBlockCount - 1) / ChunkRatio);

    /// <summary>BAT entries a differencing file needs: NSB * (ChunkRatio + 1).</summary>
    public long TotalBatEntriesWithParent => SectorBitmapBlockCount * (ChunkRatio + 1);

    /// <summary>BAT entries this file needs (the formula for <see cref="HasParent"/>); a smaller BAT region is corrupt.</summary>
    public long TotalBatEntries => HasParent ? TotalBatEntriesWithParent : TotalBatEntriesWithoutParent;

    /// <summary>Length of the BAT region a file gets when written: RoundUp(NSB * (ChunkRatio + 1) * 8, 1 MiB).</summary>
    public long BatLength => BlockAlignment.AlignUp(TotalBatEntriesWithParent * BatEntry.Size, SectorBitmapBlockSize);

    /// <summary>Bytes of a sector bitmap that cover one payload block: 1 MiB / ChunkRatio.</summary>
    public int SectorBitmapBytesPerBlock => (int)(SectorBitmapBlockSize / ChunkRatio);

    /// <summary>The chunk (sector-bitmap block) holding payload block <paramref name="block"/>.</summary>
    public long ChunkOf(long block) => block / ChunkRatio;

    /// <summary>Offset of payload block <paramref name="block"/>'s first bit's byte inside its chunk's sector bitmap.</summary>
    public long SectorBitmapOffset(long block) => (block % ChunkRatio) * SectorBitmapBytesPerBlock;

    /// <summary>BAT index of payload block <paramref name="block"/>: k + Floor(k / ChunkRatio).</summary>
    public long PayloadBatIndex(long block) => block + (block / ChunkRatio);

    /// <summary>BAT index of the sector-bitmap entry of <paramref name="chunk"/>: c * (ChunkRatio + 1) + ChunkRatio.</summary>
    public long SectorBitmapBatIndex(long chunk) => (chunk * (ChunkRatio + 1)) + ChunkRatio;

    /// <summary>Whether BAT entry <paramref name="index"/> is a sector-bitmap entry.</summary>
    public bool IsSectorBitmapBatIndex(long index) => index % (ChunkRatio + 1) == ChunkRatio;

    /// <summary>
    /// The inverse of the index methods: what BAT entry <paramref name="index"/> (at least 0) describes, the sector
    /// bitmap of chunk <c>Number</c> or payload block <c>Number</c>. Past the last payload block the answer is a block
    /// number of at least <see cref="PayloadBlockCount"/> (an unused entry).
    /// </summary>
    public (bool IsSectorBitmap, long Number) Locate(long index)
    {
        long chunk = index / (ChunkRatio + 1);
        long inChunk = index - (chunk * (ChunkRatio + 1));
        return inChunk == ChunkRatio ? (true, chunk) : (false, (chunk * ChunkRatio) + inChunk);
    }
}
