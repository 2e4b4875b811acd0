using BackupFuse.BackupImage.Writing;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - A filter over the source the backup pipeline reads: blocks the file system does not use are holes (the pipeline
//   skips whole chunks of them unread, and an incremental records Zero where its parent chain held data), and the
//   unused parts of a chunk that is read are zeroed, so free space reads back as zeros and compresses to nothing.
// - NextData/NextHole intersect the map with the source's own holes. Only the pipeline's reader thread calls them.

/// <summary>The source disk restricted to the blocks a file system uses.</summary>
internal sealed class UsedBlocksDiskReader(IDiskReader inner, UsedBlockMap map) : IDiskReader
{
    public string Name => inner.Name;

    public long Length => inner.Length;

    public long NextData(long offset)
    {
        while (offset < Length)
        {
            long used = map.NextUsed(offset);
            if (used >= Length)
            {
                return Length;
            }

            long data = inner.NextData(used);
            if (data >= Length || map.NextUsed(data) == data)
            {
                return Math.Min(data, Length);
            }

            offset = data;
        }

        return Length;
    }

    public long NextHole(long offset) => Math.Min(inner.NextHole(offset), map.NextUnused(offset));

    public void Read(long offset, Span<byte> buffer)
    {
        inner.Read(offset, buffer);
        long end = offset + buffer.Length;
        long at = map.NextUnused(offset);
        while (at < end)
        {
            long usedAgain = Math.Min(end, map.NextUsed(at));
            buffer[(int)(at - offset)..(int)(usedAgain - offset)].Clear();
            at = usedAgain >= end ? end : map.NextUnused(usedAgain);
        }
    }

    public void Dispose() => inner.Dispose();
}
