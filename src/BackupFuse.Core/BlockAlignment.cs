namespace BackupFuse.Core;

/// <summary>One piece of a request split at block boundaries.</summary>
/// <param name="Offset">Absolute offset of the piece.</param>
/// <param name="Length">Length of the piece.</param>
/// <param name="BufferOffset">Where the piece starts inside the caller's buffer.</param>
/// <param name="IsAligned">True when the piece starts and ends on block boundaries (the body).</param>
public readonly record struct AlignedSegment(long Offset, int Length, int BufferOffset, bool IsAligned);

/// <summary>Head/body/tail split of unaligned I/O, written once and used by every layer that needs it.</summary>
public static class BlockAlignment
{
    /// <summary>
    /// Splits [offset, offset+length) into at most three pieces: an unaligned head inside one block, an aligned
    /// body of whole blocks, and an unaligned tail inside one block. <paramref name="blockSize"/> is a power of two.
    /// </summary>
    public static int Split(long offset, int length, int blockSize, Span<AlignedSegment> segments)
    {
        if (segments.Length < 3)
        {
            throw new ArgumentException("room for three segments is needed", nameof(segments));
        }

        if (length == 0)
        {
            return 0;
        }

        long mask = blockSize - 1;
        long end = offset + length;
        int count = 0;
        long headEnd = Math.Min(end, (offset + mask) & ~mask);
        if ((offset & mask) != 0)
        {
            segments[count++] = new AlignedSegment(offset, (int)(headEnd - offset), 0, false);
            if (headEnd == end)
            {
                return count;
            }
        }
        else
        {
            headEnd = offset;
        }

        long bodyEnd = end & ~mask;
        if (bodyEnd > headEnd)
        {
            segments[count++] = new AlignedSegment(headEnd, (int)(bodyEnd - headEnd), (int)(headEnd - offset), true);
        }

        if (end > Math.Max(bodyEnd, headEnd))
        {
            long tailStart = Math.Max(bodyEnd, headEnd);
            segments[count++] = new AlignedSegment(tailStart, (int)(end - tailStart), (int)(tailStart - offset), false);
        }

        return count;
    }

    /// <summary>Rounds <paramref name="value"/> up to a multiple of the power of two <paramref name="alignment"/>.</summary>
    public static long AlignUp(long value, long alignment) => (value + alignment - 1) & ~(alignment - 1);

    /// <summary>Rounds <paramref name="value"/> down to a multiple of the power of two <paramref name="alignment"/>.</summary>
    public static long AlignDown(long value, long alignment) => value & ~(alignment - 1);
}
