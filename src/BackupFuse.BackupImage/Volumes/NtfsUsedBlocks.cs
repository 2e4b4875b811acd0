using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - NTFS keeps its cluster allocation in the $Bitmap file (MFT record 6): one bit per cluster, LSB first, set =
//   in use, as partclone.ntfs and ntfsclone read it. Its $DATA attribute is non-resident; its data runs give the
//   clusters that hold the bitmap. The MFT's first records are contiguous from the boot sector's MFT cluster.
// - Every MFT record read gets its update-sequence fixups applied (the last two bytes of each sector are stored in
//   the record header), and each step is checked: a record that is not "FILE", a fixup that does not match, runs
//   that leave the volume, a bitmap shorter than the cluster count: every block is stored instead.
// - Not clean: the dirty flag of $Volume's $VOLUME_INFORMATION (MFT record 3), set while Windows has the volume
//   mounted or after an unclean shutdown; ntfsfix -n would complain too. The bytes after the last cluster (the
//   backup boot sector) count as used (UsedBlockMap's unmapped tail).

/// <summary>The used-block map of an NTFS volume from its $Bitmap.</summary>
public static class NtfsUsedBlocks
{
    private const uint AttributeVolumeInformation = 0x70;
    private const uint AttributeData = 0x80;
    private const uint AttributeEnd = 0xFFFFFFFF;

    /// <summary>The map, or null with <paramref name="reason"/> saying why every block must be stored.</summary>
    public static UsedBlockMap? TryBuild(VolumeReader read, long volumeLength, out string reason)
    {
        ArgumentNullException.ThrowIfNull(read);
        byte[] boot = new byte[512];
        read(0, boot);
        var b = boot.AsSpan();
        if (!b.Slice(3, 8).SequenceEqual("NTFS    "u8))
        {
            reason = "no NTFS boot sector";
            return null;
        }

        int sectorSize = BinaryPrimitives.ReadUInt16LittleEndian(b[11..]);
        int spc = b[13] <= 0x80 ? b[13] : 1 << (256 - b[13]);
        long totalSectors = BinaryPrimitives.ReadInt64LittleEndian(b[40..]);
        long mftCluster = BinaryPrimitives.ReadInt64LittleEndian(b[48..]);
        sbyte perRecord = (sbyte)b[64];
        if (sectorSize is < 256 or > 4096 || (sectorSize & (sectorSize - 1)) != 0 || spc <= 0 || spc > 4096 || totalSectors <= 0 ||
            totalSectors * sectorSize > volumeLength)
        {
            reason = "the NTFS boot sector's geometry does not fit the volume";
            return null;
        }

        int clusterSize = sectorSize * spc;
        long clusters = totalSectors / spc;
        int recordSize = perRecord < 0 ? 1 << -perRecord : perRecord * clusterSize;
        if (recordSize is < 256 or > 65536 || mftCluster <= 0 || mftCluster >= clusters)
        {
            reason = "the NTFS boot sector's MFT location or record size is out of range";
            return null;
        }

        long mft = mftCluster * clusterSize;
        byte[] volume = ReadRecord(read, mft + (3L * recordSize), recordSize, sectorSize, out string? bad);
        if (bad != null)
        {
            reason = $"MFT record 3 ($Volume): {bad}";
            return null;
        }

        if (FindAttribute(volume, AttributeVolumeInformation) is not { } info || volume[info + 8] != 0)
        {
            reason = "$Volume has no resident $VOLUME_INFORMATION";
            return null;
        }

        int valueOffset = BinaryPrimitives.ReadUInt16LittleEndian(volume.AsSpan(info + 20));
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(volume.AsSpan(info + valueOffset + 10));
        if ((flags & 0x0001) != 0)
        {
            reason = "the NTFS volume is marked dirty (in use, or not cleanly unmounted: run chkdsk or ntfsfix)";
            return null;
        }

        byte[] bitmapRecord = ReadRecord(read, mft + (6L * recordSize), recordSize, sectorSize, out bad);
        if (bad != null)
        {
            reason = $"MFT record 6 ($Bitmap): {bad}";
            return null;
        }

        if (FindAttribute(bitmapRecord, AttributeData) is not { } data || bitmapRecord[data + 8] != 1)
        {
            reason = "$Bitmap has no non-resident $DATA";
            return null;
        }

        var map = new UsedBlockMap(volumeLength, clusterSize, clusters);
        long vcn = 0;
        int runs = data + BinaryPrimitives.ReadUInt16LittleEndian(bitmapRecord.AsSpan(data + 32));
        int attributeEnd = data + (int)BinaryPrimitives.ReadUInt32LittleEndian(bitmapRecord.AsSpan(data + 4));
        long lcn = 0;
        byte[] cluster = new byte[clusterSize];
        long bitsPerCluster = clusterSize * 8L;
        while (runs < attributeEnd && bitmapRecord[runs] != 0)
        {
            int lengthSize = bitmapRecord[runs] & 0xF, offsetSize = bitmapRecord[runs] >> 4;
            if (lengthSize is 0 or > 8 || offsetSize > 8 || runs + 1 + lengthSize + offsetSize > attributeEnd)
            {
                reason = "$Bitmap's data runs are damaged";
                return null;
            }

            long length = ReadSigned(bitmapRecord.AsSpan(runs + 1, lengthSize));
            if (offsetSize == 0)
            {
                reason = "$Bitmap is sparse";
                return null;
            }

            lcn += ReadSigned(bitmapRecord.AsSpan(runs + 1 + lengthSize, offsetSize));
            if (length <= 0 || lcn < 0 || lcn + length > clusters)
            {
                reason = "$Bitmap's data runs leave the volume";
                return null;
            }

            for (long i = 0; i < length && vcn * bitsPerCluster < clusters; i++, vcn++)
            {
                read((lcn + i) * clusterSize, cluster);
                map.MarkFromBitmap(vcn * bitsPerCluster, cluster, Math.Min(bitsPerCluster, clusters - (vcn * bitsPerCluster)));
            }

            runs += 1 + lengthSize + offsetSize;
        }

        if (vcn * bitsPerCluster < clusters)
        {
            reason = "$Bitmap is shorter than the volume's cluster count";
            return null;
        }

        map.MarkUsed(0, 1); // the boot sector's cluster, whatever the bitmap says
        reason = string.Empty;
        return map;
    }

    private static byte[] ReadRecord(VolumeReader read, long offset, int size, int sectorSize, out string? problem)
    {
        byte[] r = new byte[size];
        read(offset, r);
        problem = null;
        if (!r.AsSpan(0, 4).SequenceEqual("FILE"u8))
        {
            problem = "not a FILE record";
            return r;
        }

        int usaOffset = BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(4));
        int usaCount = BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(6));
        if (usaCount != (size / sectorSize) + 1 || usaOffset + (usaCount * 2) > size)
        {
            problem = "its update sequence array does not fit";
            return r;
        }

        ushort usn = BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(usaOffset));
        for (int i = 1; i < usaCount; i++)
        {
            int end = (i * sectorSize) - 2;
            if (BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(end)) != usn)
            {
                problem = "an update sequence number does not match (torn write)";
                return r;
            }

            r[end] = r[usaOffset + (i * 2)];
            r[end + 1] = r[usaOffset + (i * 2) + 1];
        }

        return r;
    }

    /// <summary>Offset of the first attribute of <paramref name="type"/> in the record, or null.</summary>
    private static int? FindAttribute(byte[] record, uint type)
    {
        int at = BinaryPrimitives.ReadUInt16LittleEndian(record.AsSpan(20));
        while (at + 8 <= record.Length)
        {
            uint t = BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(at));
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(at + 4));
            if (t == AttributeEnd || length < 16 || at + length > record.Length)
            {
                return null;
            }

            if (t == type && at + 64 <= record.Length)
            {
                return at;
            }

            at += (int)length;
        }

        return null;
    }

    private static long ReadSigned(ReadOnlySpan<byte> bytes)
    {
        long v = 0;
        for (int i = bytes.Length - 1; i >= 0; i--)
        {
            v = (v << 8) | bytes[i];
        }

        int shift = 64 - (8 * bytes.Length);
        return (v << shift) >> shift;
    }
}
