using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

public sealed class BlockAlignmentTests
{
    [Theory]
    [InlineData(0, 4096, 1)]          // aligned body only
    [InlineData(0, 100, 1)]           // tail only
    [InlineData(100, 100, 1)]         // inside one block
    [InlineData(100, 3996, 1)]        // head ending on a boundary
    [InlineData(100, 8092, 2)]        // head + body
    [InlineData(100, 9000, 3)]        // head + body + tail
    [InlineData(4096, 4196, 2)]       // body + tail
    [InlineData(4000, 200, 2)]        // head + tail across one boundary
    public void SplitCoversTheRangeExactlyOnce(long offset, int length, int expectedCount)
    {
        Span<AlignedSegment> segs = stackalloc AlignedSegment[3];
        int n = BlockAlignment.Split(offset, length, 4096, segs);
        Assert.Equal(expectedCount, n);
        long pos = offset;
        int bufferPos = 0;
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(pos, segs[i].Offset);
            Assert.Equal(bufferPos, segs[i].BufferOffset);
            bool aligned = segs[i].Offset % 4096 == 0 && segs[i].Length % 4096 == 0;
            Assert.Equal(aligned, segs[i].IsAligned);
            if (!segs[i].IsAligned)
            {
                Assert.Equal(segs[i].Offset / 4096, (segs[i].Offset + segs[i].Length - 1) / 4096);
            }

            pos += segs[i].Length;
            bufferPos += segs[i].Length;
        }

        Assert.Equal(offset + length, pos);
    }

    [Fact]
    public void ZeroLengthGivesNoSegments()
    {
        Span<AlignedSegment> segs = stackalloc AlignedSegment[3];
        Assert.Equal(0, BlockAlignment.Split(123, 0, 512, segs));
    }

    [Fact]
    public void AlignHelpers()
    {
        Assert.Equal(1 << 20, BlockAlignment.AlignUp(1, 1 << 20));
        Assert.Equal(0, BlockAlignment.AlignDown((1 << 20) - 1, 1 << 20));
        Assert.Equal(1 << 20, BlockAlignment.AlignUp(1 << 20, 1 << 20));
    }
}
