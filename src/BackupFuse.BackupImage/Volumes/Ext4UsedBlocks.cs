using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - Reads the ext2/3/4 superblock (offset 1024), the group descriptor table (block s_first_data_block + 1; 32-byte
//   descriptors, or s_desc_size with the 64bit feature) and each group's block bitmap, as partclone.extfs and
//   e2image do. Blocks before s_first_data_block (the boot block) are always used.
// - Over-approximation, never under: the metadata of every group (block bitmap, inode bitmap, inode table, wherever
//   flex_bg placed them) is marked used. A group flagged BLOCK_UNINIT (uninit_bg / metadata_csum) has no bitmap on
//   disk: its superblock backup, descriptor copies and reserved GDT blocks are marked used (whether or not sparse_super
//   puts a backup there) and, through the rule above, any other group's metadata that lies in it, which is what the
//   kernel's ext4_init_block_bitmap computes.
// - Refused (the caller stores every block and says why): not cleanly unmounted or with errors (s_state), a journal
//   that needs recovery, meta_bg (descriptors spread over the disk), a bitmap or table outside the volume, a
//   geometry that does not add up. Checksums of the bitmaps are not verified (e2fsck on the restore is the oracle).

/// <summary>The used-block map of an ext2/3/4 volume from its block bitmaps.</summary>
public static class Ext4UsedBlocks
{
    private const uint StateValid = 1;
    private const uint StateErrors = 2;
    private const uint IncompatRecover = 0x4;
    private const uint IncompatJournalDev = 0x8;
    private const uint IncompatMetaBg = 0x10;
    private const uint Incompat64Bit = 0x80;
    private const ushort BlockUninit = 0x2;

    /// <summary>The map, or null with <paramref name="reason"/> saying why every block must be stored.</summary>
    public static UsedBlockMap? TryBuild(VolumeReader read, long volumeLength, out string reason)
    {
        ArgumentNullException.ThrowIfNull(read);
        byte[] sb = new byte[1024];
        if (volumeLength < 2048)
        {
            reason = "the volume is too small to hold an ext2/3/4 superblock";
            return null;
        }

        read(1024, sb);
        if (BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(56)) != 0xEF53)
        {
            reason = "no ext2/3/4 superblock";
            return null;
        }

        uint state = BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(58));
        uint incompat = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(96));
        int logBlock = BinaryPrimitives.ReadInt32LittleEndian(sb.AsSpan(24));
        if ((incompat & IncompatRecover) != 0)
        {
            reason = "the ext4 journal needs recovery (needs_recovery: mounted, or not cleanly unmounted)";
            return null;
        }

        if ((state & StateValid) == 0 || (state & StateErrors) != 0)
        {
            reason = (state & StateErrors) != 0 ? "the file system has errors recorded (run e2fsck)" : "the file system was not cleanly unmounted";
            return null;
        }

        if ((incompat & IncompatMetaBg) != 0 || (incompat & IncompatJournalDev) != 0)
        {
            reason = (incompat & IncompatMetaBg) != 0 ? "meta_bg group descriptors are not read by this version" : "the volume is an external journal device";
            return null;
        }

        if (logBlock is < 0 or > 6)
        {
            reason = $"block size 1024 << {logBlock} is out of range";
            return null;
        }

        int blockSize = 1024 << logBlock;
        bool is64 = (incompat & Incompat64Bit) != 0;
        long blocks = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(4)) | (is64 ? (long)BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x150)) << 32 : 0);
        long firstData = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(20));
        long perGroup = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(32));
        long inodesPerGroup = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(40));
        int inodeSize = BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(88));
        int descSize = is64 ? BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(254)) : 32;
        long reservedGdt = BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(206));
        if (inodeSize == 0)
        {
            inodeSize = 128; // revision 0
        }

        if (blocks <= firstData || blocks * blockSize > volumeLength || perGroup <= 0 || perGroup > 8L * blockSize ||
            descSize < 32 || (descSize & (descSize - 1)) != 0 || descSize > blockSize || inodeSize > blockSize)
        {
            reason = $"the superblock's geometry does not fit the volume ({blocks} blocks of {blockSize} bytes, {perGroup} per group, descriptors of {descSize} bytes)";
            return null;
        }

        long groups = (blocks - firstData + perGroup - 1) / perGroup;
        long gdtBlocks = ((groups * descSize) + blockSize - 1) / blockSize;
        if (groups * descSize > 64L << 20 || reservedGdt > perGroup)
        {
            reason = $"the superblock describes {groups} groups ({perGroup} blocks each), more than a real ext4 of this size";
            return null;
        }

        long inodeTableBlocks = ((inodesPerGroup * inodeSize) + blockSize - 1) / blockSize;
        byte[] gdt = new byte[gdtBlocks * blockSize];
        read((firstData + 1) * blockSize, gdt);

        var map = new UsedBlockMap(volumeLength, blockSize, blocks);
        map.MarkUsed(0, firstData + 1 + gdtBlocks + reservedGdt); // boot block, superblock, descriptors, reserved GDT
        byte[] bitmap = new byte[blockSize];
        var descriptors = new (long Bitmap, long InodeBitmap, long InodeTable, ushort Flags)[groups];
        for (long g = 0; g < groups; g++)
        {
            var d = gdt.AsSpan((int)(g * descSize), descSize);
            bool wide = is64 && descSize >= 64;
            long blockBitmap = BinaryPrimitives.ReadUInt32LittleEndian(d) | (wide ? (long)BinaryPrimitives.ReadUInt32LittleEndian(d[32..]) << 32 : 0);
            long inodeBitmap = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]) | (wide ? (long)BinaryPrimitives.ReadUInt32LittleEndian(d[36..]) << 32 : 0);
            long inodeTable = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]) | (wide ? (long)BinaryPrimitives.ReadUInt32LittleEndian(d[40..]) << 32 : 0);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(d[18..]);
            if (blockBitmap < firstData || blockBitmap >= blocks || inodeBitmap >= blocks || inodeTable + inodeTableBlocks > blocks)
            {
                reason = $"group {g}'s descriptor points outside the volume (block bitmap {blockBitmap}, inode table {inodeTable})";
                return null;
            }

            descriptors[g] = (blockBitmap, inodeBitmap, inodeTable, flags);
            map.MarkUsed(blockBitmap, 1);
            map.MarkUsed(inodeBitmap, 1);
            map.MarkUsed(inodeTable, inodeTableBlocks);
        }

        for (long g = 0; g < groups; g++)
        {
            long start = firstData + (g * perGroup);
            long count = Math.Min(perGroup, blocks - start);
            if ((descriptors[g].Flags & BlockUninit) != 0)
            {
                map.MarkUsed(start, 1 + gdtBlocks + reservedGdt); // a possible superblock backup and descriptor copy
                continue;
            }

            read(descriptors[g].Bitmap * blockSize, bitmap);
            map.MarkFromBitmap(start, bitmap, count);
        }

        reason = string.Empty;
        return map;
    }
}
