using System.Buffers.Binary;
using System.Text;

namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - The reserved region of a FAT32 volume, built once (a few KiB): the boot sector with the BPB (fatgen103
//   "FAT32 Structure Starting at Offset 36"), the FSInfo sector at 1, and their copies at 6 and 7 (BPB_BkBootSec),
//   byte-identical as fsck.vfat checks. The rest is zeros. Not bootable: the boot code area is zeros after the jump.
// - FSInfo carries the true free count and the first free cluster (we know both exactly).

/// <summary>Builds the reserved region (boot sector, FSInfo and their backups) of a FAT32 volume.</summary>
public static class Fat32BootRegion
{
    /// <summary>Sector of the FSInfo structure.</summary>
    public const int FsInfoSector = 1;

    /// <summary>Sector of the backup boot sector.</summary>
    public const int BackupBootSector = 6;

    /// <summary>The cluster of the root directory.</summary>
    public const uint RootCluster = 2;

    /// <summary>The media descriptor (fixed disk), also in FAT[0].</summary>
    public const byte Media = 0xF8;

    /// <summary>The reserved region's bytes.</summary>
    /// <param name="g">The layout.</param>
    /// <param name="label">The 11-character volume label.</param>
    /// <param name="serial">The volume serial number.</param>
    /// <param name="freeClusters">Free clusters (FSInfo free count).</param>
    /// <param name="firstFree">First free cluster, or 0xFFFFFFFF when none.</param>
    /// <param name="hiddenSectors">BPB_HiddSec.</param>
    public static byte[] Build(Fat32Geometry g, string label, uint serial, long freeClusters, uint firstFree, uint hiddenSectors)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(label);
        const int S = Fat32Geometry.SectorSize;
        var region = new byte[g.ReservedSectors * S];
        var boot = region.AsSpan(0, S);
        boot[0] = 0xEB;
        boot[1] = 0x58;
        boot[2] = 0x90;
        Encoding.ASCII.GetBytes("BKUPFUSE", boot[3..]);
        BinaryPrimitives.WriteUInt16LittleEndian(boot[11..], S);
        boot[13] = (byte)g.SectorsPerCluster;
        BinaryPrimitives.WriteUInt16LittleEndian(boot[14..], (ushort)g.ReservedSectors);
        boot[16] = 2; // FATs
        boot[21] = Media;
        BinaryPrimitives.WriteUInt16LittleEndian(boot[24..], 63); // sectors per track (CHS is unused, conventional values)
        BinaryPrimitives.WriteUInt16LittleEndian(boot[26..], 255); // heads
        BinaryPrimitives.WriteUInt32LittleEndian(boot[28..], hiddenSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(boot[32..], checked((uint)g.TotalSectors));
        BinaryPrimitives.WriteUInt32LittleEndian(boot[36..], checked((uint)g.FatSectors));
        BinaryPrimitives.WriteUInt32LittleEndian(boot[44..], RootCluster);
        BinaryPrimitives.WriteUInt16LittleEndian(boot[48..], FsInfoSector);
        BinaryPrimitives.WriteUInt16LittleEndian(boot[50..], BackupBootSector);
        boot[64] = 0x80; // drive number
        boot[66] = 0x29; // extended boot signature: the next three fields are present
        BinaryPrimitives.WriteUInt32LittleEndian(boot[67..], serial);
        Encoding.ASCII.GetBytes(label.AsSpan(0, 11), boot[71..]);
        Encoding.ASCII.GetBytes("FAT32   ", boot[82..]);
        boot[510] = 0x55;
        boot[511] = 0xAA;

        var info = region.AsSpan(FsInfoSector * S, S);
        BinaryPrimitives.WriteUInt32LittleEndian(info, 0x41615252);
        BinaryPrimitives.WriteUInt32LittleEndian(info[484..], 0x61417272);
        BinaryPrimitives.WriteUInt32LittleEndian(info[488..], checked((uint)freeClusters));
        BinaryPrimitives.WriteUInt32LittleEndian(info[492..], firstFree);
        BinaryPrimitives.WriteUInt32LittleEndian(info[508..], 0xAA550000);

        region.AsSpan(0, 2 * S).CopyTo(region.AsSpan(BackupBootSector * S));
        return region;
    }
}
