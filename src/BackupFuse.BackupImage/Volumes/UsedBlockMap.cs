using System.Numerics;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - One bit per file-system block, set = allocated (or possibly allocated: a map may over-approximate, never
//   under-approximate; an unused block that is stored costs bytes, a used block that is not stored loses data).
// - 1 bit per 4 KiB block: 32 MiB for a 1 TiB volume, built once before the backup and then read-only, so the
//   reader thread may query it without locks.
// - The bytes past the last whole block (a volume not a multiple of the block size) count as used.

/// <summary>Which blocks of a volume its file system uses; queried in bytes.</summary>
public sealed class UsedBlockMap
{
    private readonly ulong[] _bits;

    /// <summary>An empty map (nothing used) of <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> bytes over a volume of <paramref name="volumeLength"/> bytes.</summary>
    public UsedBlockMap(long volumeLength, int blockSize, long blockCount)
    {
        if (blockSize <= 0 || blockCount < 0 || blockCount * blockSize > volumeLength)
        {
            throw new InvalidDataException($"{blockCount} blocks of {blockSize} bytes do not fit a volume of {volumeLength} bytes");
        }

        VolumeLength = volumeLength;
        BlockSize = blockSize;
        BlockCount = blockCount;
        _bits = new ulong[(blockCount + 63) / 64];
    }

    /// <summary>Bytes of the volume.</summary>
    public long VolumeLength { get; }

    /// <summary>Bytes per block.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks the map covers (from offset 0).</summary>
    public long BlockCount { get; }

    /// <summary>Blocks marked used.</summary>
    public long UsedBlocks => _bits.Sum(w => (long)BitOperations.PopCount(w));

    /// <summary>Marks blocks [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>) used (clipped to the map).</summary>
    public void MarkUsed(long first, long count)
    {
        long end = Math.Min(BlockCount, first + count);
        for (long b = Math.Max(0, first); b < end; b++)
        {
            _bits[b >> 6] |= 1UL << (int)(b & 63);
        }
    }

    /// <summary>Marks every block used (a map that then clears what the file system lists as free).</summary>
    public void MarkAllUsed()
    {
        Array.Fill(_bits, ulong.MaxValue);
        if (BlockCount % 64 != 0)
        {
            _bits[^1] = (1UL << (int)(BlockCount % 64)) - 1;
        }
    }

    /// <summary>Marks blocks [<paramref name="first"/>, <paramref name="first"/> + <paramref name="count"/>) unused (clipped to the map).</summary>
    public void MarkUnused(long first, long count)
    {
        long end = Math.Min(BlockCount, first + count);
        for (long b = Math.Max(0, first); b < end; b++)
        {
            _bits[b >> 6] &= ~(1UL << (int)(b & 63));
        }
    }

    /// <summary>ORs an on-disk bitmap (bit i of byte i/8, LSB first, as ext4 and NTFS store it) for blocks from <paramref name="first"/>.</summary>
    public void MarkFromBitmap(long first, ReadOnlySpan<byte> bitmap, long count)
    {
        long n = Math.Min(count, Math.Min(bitmap.Length * 8L, BlockCount - first));
        for (long i = 0; i < n; i++)
        {
            if ((bitmap[(int)(i >> 3)] & (1 << (int)(i & 7))) != 0)
            {
                long b = first + i;
                _bits[b >> 6] |= 1UL << (int)(b & 63);
            }
        }
    }

    /// <summary>Whether the block is used.</summary>
    public bool IsUsed(long block) => block >= BlockCount || (_bits[block >> 6] & (1UL << (int)(block & 63))) != 0;

    /// <summary>First byte at or after <paramref name="offset"/> in a used block (or the unmapped tail), or <see cref="VolumeLength"/>.</summary>
    public long NextUsed(long offset) => Next(offset, used: true);

    /// <summary>First byte at or after <paramref name="offset"/> in an unused block, or <see cref="VolumeLength"/>.</summary>
    public long NextUnused(long offset) => Next(offset, used: false);

    private long Next(long offset, bool used)
    {
        if (offset >= VolumeLength)
        {
            return VolumeLength;
        }

        long block = offset / BlockSize;
        if (block >= BlockCount)
        {
            return used ? offset : VolumeLength;
        }

        if (IsUsed(block) == used)
        {
            return offset;
        }

        // Word-wise scan from the next block.
        long b = block + 1;
        while (b < BlockCount)
        {
            ulong word = _bits[b >> 6];
            if (!used)
            {
                word = ~word;
            }

            word >>= (int)(b & 63);
            if (word != 0)
            {
                long found = b + BitOperations.TrailingZeroCount(word);
                return found >= BlockCount ? (used ? BlockCount * BlockSize : VolumeLength) : found * BlockSize;
            }

            b = (b | 63) + 1;
        }

        return used ? Math.Min(VolumeLength, BlockCount * BlockSize) : VolumeLength;
    }
}
