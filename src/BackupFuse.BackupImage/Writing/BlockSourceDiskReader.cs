using BackupFuse.Core;

namespace BackupFuse.BackupImage.Writing;

/// <summary>Source disk from an <see cref="IBlockSource"/>: Zero and Unallocated extents are holes (not read).</summary>
internal sealed class BlockSourceDiskReader(IBlockSource source, string name) : IDiskReader
{
    public string Name { get; } = name;

    public long Length => source.Length;

    public long NextData(long offset)
    {
        while (offset < Length)
        {
            var e = source.GetExtent(offset, Length - offset);
            if (e.Kind == ExtentKind.Data)
            {
                return offset;
            }

            offset = e.End;
        }

        return Length;
    }

    public long NextHole(long offset)
    {
        while (offset < Length)
        {
            var e = source.GetExtent(offset, Length - offset);
            if (e.Kind != ExtentKind.Data)
            {
                return offset;
            }

            offset = e.End;
        }

        return Length;
    }

    public void Read(long offset, Span<byte> buffer) => source.Read(offset, buffer);

    public void Dispose()
    {
        // The caller owns the source.
    }
}
