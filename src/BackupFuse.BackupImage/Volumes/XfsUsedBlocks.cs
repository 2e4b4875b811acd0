using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - XFS keeps free space, not used space: per allocation group, the by-block-number free-space B+tree (bnobt, rooted
//   in the AGF at sector 1 of the AG) lists every free extent. The map starts all used and clears those extents, as
//   partclone.xfs does. Everything else (metadata, the AGFL, the internal log, the btrees themselves) stays used.
// - Map blocks are linear: AG number x sb_agblocks + AG block (the byte offset divided by the block size).
// - Refused (every block stored): a dirty log (XfsLogState), an external log or realtime volume, any magic, level
//   or record that does not check out, a tree deeper than 8 levels or larger than the AG. v4 ("ABTB") and v5
//   ("AB3B", 56-byte header) blocks are read; their CRCs are not verified (xfs_repair on the restore is the oracle).

/// <summary>The used-block map of an XFS volume from its free-space B+trees.</summary>
public static class XfsUsedBlocks
{
    private const int MaxLevels = 8;

    /// <summary>The map, or null with <paramref name="reason"/> saying why every block must be stored.</summary>
    public static UsedBlockMap? TryBuild(VolumeReader read, long volumeLength, out string reason)
    {
        ArgumentNullException.ThrowIfNull(read);
        byte[] sb = new byte[512];
        read(0, sb);
        var s = sb.AsSpan();
        if (!s[..4].SequenceEqual("XFSB"u8))
        {
            reason = "no XFS superblock";
            return null;
        }

        int blockSize = (int)BinaryPrimitives.ReadUInt32BigEndian(s[4..]);
        long dblocks = (long)BinaryPrimitives.ReadUInt64BigEndian(s[8..]);
        long rblocks = (long)BinaryPrimitives.ReadUInt64BigEndian(s[16..]);
        long logStart = (long)BinaryPrimitives.ReadUInt64BigEndian(s[48..]);
        long agBlocks = BinaryPrimitives.ReadUInt32BigEndian(s[84..]);
        long agCount = BinaryPrimitives.ReadUInt32BigEndian(s[88..]);
        long logBlocks = BinaryPrimitives.ReadUInt32BigEndian(s[96..]);
        int version = BinaryPrimitives.ReadUInt16BigEndian(s[100..]) & 0xF;
        int sectorSize = BinaryPrimitives.ReadUInt16BigEndian(s[102..]);
        int agBlockLog = s[124];
        if (blockSize is < 512 or > 65536 || (blockSize & (blockSize - 1)) != 0 || sectorSize is < 512 or > 32768 || agBlocks <= 0 || agCount <= 0 ||
            dblocks <= 0 || dblocks * blockSize > volumeLength || agCount * agBlocks < dblocks || (agCount - 1) * agBlocks >= dblocks || agBlockLog is <= 0 or > 31 ||
            version is not (4 or 5))
        {
            reason = $"the XFS superblock's geometry does not fit the volume ({dblocks} blocks of {blockSize} bytes, {agCount} AGs of {agBlocks})";
            return null;
        }

        if (rblocks != 0 || logStart == 0)
        {
            reason = rblocks != 0 ? "the XFS file system has a realtime section" : "the XFS log is external";
            return null;
        }

        long logLinear = ((logStart >> agBlockLog) * agBlocks) + (logStart & ((1L << agBlockLog) - 1));
        if (logLinear + logBlocks > dblocks || logBlocks * blockSize > 2L << 30)
        {
            reason = "the XFS log lies outside the volume";
            return null;
        }

        if (XfsLogState.WhyNotClean(read, logLinear * blockSize, logBlocks * blockSize) is { } dirty)
        {
            reason = dirty;
            return null;
        }

        var map = new UsedBlockMap(volumeLength, blockSize, dblocks);
        map.MarkAllUsed();
        byte[] agf = new byte[sectorSize];
        byte[] block = new byte[blockSize];
        for (long ag = 0; ag < agCount; ag++)
        {
            long agStart = ag * agBlocks;
            long agLength = Math.Min(agBlocks, dblocks - agStart);
            read((agStart * blockSize) + sectorSize, agf);
            if (!agf.AsSpan(0, 4).SequenceEqual("XAGF"u8) || BinaryPrimitives.ReadUInt32BigEndian(agf.AsSpan(8)) != ag ||
                BinaryPrimitives.ReadUInt32BigEndian(agf.AsSpan(12)) != agLength)
            {
                reason = $"AG {ag}'s AGF does not check out";
                return null;
            }

            long root = BinaryPrimitives.ReadUInt32BigEndian(agf.AsSpan(16));
            int levels = (int)BinaryPrimitives.ReadUInt32BigEndian(agf.AsSpan(28));
            if (levels is < 1 or > MaxLevels)
            {
                reason = $"AG {ag}'s free-space tree has {levels} levels";
                return null;
            }

            long budget = agLength; // a tree never has more blocks than its AG: a cycle or a hostile fan-out stops here
            if (Walk(read, map, block, agStart, agLength, root, levels - 1, version, ref budget) is { } bad)
            {
                reason = $"AG {ag}'s free-space tree: {bad}";
                return null;
            }
        }

        reason = string.Empty;
        return map;
    }

    /// <summary>Clears the free extents under the bnobt block <paramref name="agBlock"/>; null, or what is wrong.</summary>
    private static string? Walk(VolumeReader read, UsedBlockMap map, byte[] block, long agStart, long agLength, long agBlock, int level, int version, ref long budget)
    {
        if (--budget < 0)
        {
            return "more tree blocks than the AG has";
        }

        if (agBlock <= 0 || agBlock >= agLength)
        {
            return $"block {agBlock} lies outside the AG";
        }

        read((agStart + agBlock) * map.BlockSize, block);
        var b = block.AsSpan();
        bool v5 = b[..4].SequenceEqual("AB3B"u8);
        if (!v5 && !b[..4].SequenceEqual("ABTB"u8) || (v5 != (version == 5)))
        {
            return $"block {agBlock} is not a free-space btree block";
        }

        int headerSize = v5 ? 56 : 16;
        int blockLevel = BinaryPrimitives.ReadUInt16BigEndian(b[4..]);
        int records = BinaryPrimitives.ReadUInt16BigEndian(b[6..]);
        if (blockLevel != level)
        {
            return $"block {agBlock} has level {blockLevel}, expected {level}";
        }

        if (level == 0)
        {
            if (records > (map.BlockSize - headerSize) / 8)
            {
                return $"leaf {agBlock} claims {records} records";
            }

            for (int r = 0; r < records; r++)
            {
                long start = BinaryPrimitives.ReadUInt32BigEndian(b[(headerSize + (r * 8))..]);
                long count = BinaryPrimitives.ReadUInt32BigEndian(b[(headerSize + (r * 8) + 4)..]);
                if (count == 0 || start + count > agLength)
                {
                    return $"free extent {start}+{count} lies outside the AG";
                }

                map.MarkUnused(agStart + start, count);
            }

            return null;
        }

        int maxRecords = (map.BlockSize - headerSize) / 12;
        if (records < 1 || records > maxRecords)
        {
            return $"node {agBlock} claims {records} records";
        }

        int pointers = headerSize + (maxRecords * 8);
        long[] children = new long[records];
        for (int r = 0; r < records; r++)
        {
            children[r] = BinaryPrimitives.ReadUInt32BigEndian(b[(pointers + (r * 4))..]);
        }

        foreach (long child in children)
        {
            if (Walk(read, map, block, agStart, agLength, child, level - 1, version, ref budget) is { } bad)
            {
                return bad;
            }
        }

        return null;
    }
}
