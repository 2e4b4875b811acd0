using System.Buffers.Binary;

namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - The 12 sectors of an exFAT boot region: main boot sector, 8 extended boot sectors (only their signature), OEM
//   parameters and reserved sector (zeros), and the boot checksum sector. The backup region is the same bytes.
// - VolumeFlags says clean, PartitionOffset is 0 ("ignore"): the volume does not know where a partition table
//   puts it. Boot code is left zero (the volume is not bootable). Pure; the bytes are built once per volume.

/// <summary>Builds the boot region of a synthesized exFAT volume.</summary>
internal static class ExFatBootRegion
{
    /// <summary>The 12 sectors of the boot region for <paramref name="g"/>.</summary>
    public static byte[] Build(ExFatGeometry g, long rootCluster, uint serial, long usedClusters)
    {
        var region = new byte[ExFatGeometry.BootRegionSectors * ExFatGeometry.SectorSize];
        var b = region.AsSpan(0, ExFatGeometry.SectorSize);
        b[0] = 0xEB;
        b[1] = 0x76;
        b[2] = 0x90;
        "EXFAT   "u8.CopyTo(b[3..]);
        BinaryPrimitives.WriteUInt64LittleEndian(b[72..], (ulong)g.VolumeSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(b[80..], (uint)g.FatOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[84..], (uint)g.FatLength);
        BinaryPrimitives.WriteUInt32LittleEndian(b[88..], (uint)g.HeapOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[92..], (uint)g.ClusterCount);
        BinaryPrimitives.WriteUInt32LittleEndian(b[96..], (uint)rootCluster);
        BinaryPrimitives.WriteUInt32LittleEndian(b[100..], serial);
        BinaryPrimitives.WriteUInt16LittleEndian(b[104..], 0x0100);
        b[108] = 9; // BytesPerSectorShift
        b[109] = (byte)g.SectorsPerClusterShift;
        b[110] = 1; // NumberOfFats
        b[111] = 0x80; // DriveSelect
        b[112] = (byte)(usedClusters * 100 / g.ClusterCount);
        b[510] = 0x55;
        b[511] = 0xAA;
        for (int s = 1; s <= 8; s++)
        {
            int end = (s + 1) * ExFatGeometry.SectorSize;
            region[end - 2] = 0x55;
            region[end - 1] = 0xAA;
        }

        uint sum = 0;
        for (int i = 0; i < 11 * ExFatGeometry.SectorSize; i++)
        {
            if (i is 106 or 107 or 112)
            {
                continue;
            }

            sum = ((sum & 1) != 0 ? 0x80000000u : 0) + (sum >> 1) + region[i];
        }

        var checksumSector = region.AsSpan(11 * ExFatGeometry.SectorSize, ExFatGeometry.SectorSize);
        for (int i = 0; i < ExFatGeometry.SectorSize; i += 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(checksumSector[i..], sum);
        }

        return region;
    }
}
