using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

/// <summary>Readahead decisions of the stream tracker, on one thread, in 64 KiB blocks.</summary>
public sealed class SequentialStreamTrackerTests
{
    private const int Shift = 16;
    private const int Block = 1 << Shift;

    [Fact]
    public void TheWindowDoublesWhileSequentialUpToTheMaximumAndNeverOverlaps()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 16);
        Assert.False(Read(tracker, 0, out _, out _)); // a new stream reads nothing ahead

        var windows = new List<long>();
        long proposedUpTo = 1;
        for (long b = 1; b <= 6; b++)
        {
            Assert.True(Read(tracker, b, out long from, out long to), $"nothing proposed after block {b}");
            Assert.Equal(Math.Max(proposedUpTo + 1, b + 1), from); // after the request, after what was proposed
            windows.Add(to - b);
            proposedUpTo = to;
        }

        Assert.Equal(new long[] { 4, 8, 16, 16, 16, 16 }, windows);
    }

    [Fact]
    public void ASeekStartsAgainFromNothing()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 32);
        for (long b = 0; b < 5; b++)
        {
            Read(tracker, b, out _, out _);
        }

        Assert.True(Read(tracker, 5, out _, out long grownTo));
        Assert.Equal(5 + 32, grownTo);

        Assert.False(Read(tracker, 500, out _, out _)); // the seek
        Assert.True(Read(tracker, 501, out long from, out long to));
        Assert.Equal(502, from);
        Assert.Equal(501 + 4, to);
    }

    [Fact]
    public void TheFirstWindowCoversTwiceTheRequest()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 64);
        Assert.False(tracker.Track(0, 16 * Block, allowReadahead: true, out _, out _));
        Assert.True(tracker.Track(16 * Block, 16 * Block, allowReadahead: true, out long from, out long to));
        Assert.Equal(32, from);
        Assert.Equal(31 + 32, to);
    }

    [Fact]
    public void ProposalsStopAtTheLastBlock()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 6, maxWindowBlocks: 16);
        Read(tracker, 0, out _, out _);
        Assert.True(Read(tracker, 1, out long from, out long to));
        Assert.Equal((2, 5), (from, to));
        Assert.False(Read(tracker, 2, out _, out _)); // everything up to the end is proposed already
        Assert.False(Read(tracker, 3, out _, out _));
    }

    [Fact]
    public void ReReadingTheSameBytesIsNoSequentialStream()
    {
        // The same 512-byte header read by each of several opens of an image: before, the second read matched the
        // stream (within one request's slack) and read 4 blocks ahead, the third 8.
        var t = new SequentialStreamTracker(blockShift: 20, blockCount: 100, maxWindowBlocks: 32);
        for (int i = 0; i < 5; i++)
        {
            Assert.False(t.Track(0, 512, allowReadahead: true, out _, out _));
        }

        // A reader that really moves on from there still gets its readahead.
        Assert.True(t.Track(512, 1 << 20, allowReadahead: true, out long from, out long to));
        Assert.True(from >= 1 && to >= from);
    }

    [Fact]
    public void RandomSmallReadsNeverReadAhead()
    {
        var random = new Random(3);
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1L << 24, maxWindowBlocks: 64);
        for (int i = 0; i < 10_000; i++)
        {
            long offset = random.NextInt64(1L << 40) & ~4095L;
            Assert.False(tracker.Track(offset, 4096, allowReadahead: true, out _, out _), $"request {i} at {offset}");
        }
    }

    [Fact]
    public void RequestsArrivingSlightlyOutOfOrderContinueTheStream()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 16);
        Read(tracker, 0, out _, out _);
        Assert.True(Read(tracker, 2, out _, out _)); // block 1's request is still on its way: within the slack
        var far = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 16);
        Read(far, 0, out _, out _);
        Assert.False(Read(far, 3, out _, out _)); // two requests ahead: a seek
    }

    [Fact]
    public void WithoutReadaheadTheStreamIsFollowedButTheWindowDoesNotGrow()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 16);
        Assert.False(tracker.Track(0, Block, allowReadahead: false, out _, out _));
        Assert.False(tracker.Track(Block, Block, allowReadahead: false, out _, out _));
        Assert.False(tracker.Track(2L * Block, Block, allowReadahead: false, out _, out _));

        // Readahead allowed again (the layer turned dear): the same stream, with the first window.
        Assert.True(Read(tracker, 3, out long from, out long to));
        Assert.Equal((4, 3 + 4), (from, to));
    }

    [Fact]
    public void AZeroMaximumNeverReadsAhead()
    {
        var tracker = new SequentialStreamTracker(Shift, blockCount: 1000, maxWindowBlocks: 0);
        for (long b = 0; b < 10; b++)
        {
            Assert.False(Read(tracker, b, out _, out _));
        }
    }

    [Fact]
    public void InterleavedStreamsKeepTheirWindowsAndTheLeastRecentlyUsedSlotIsReplaced()
    {
        // Two slots: streams A and B interleaved both read ahead.
        var two = new SequentialStreamTracker(Shift, blockCount: 100_000, maxWindowBlocks: 16, streamCount: 2);
        long a = 0, b = 50_000;
        Read(two, a++, out _, out _);
        Read(two, b++, out _, out _);
        for (int i = 0; i < 5; i++)
        {
            Assert.True(Read(two, a++, out _, out _), "stream A lost");
            Assert.True(Read(two, b++, out _, out _), "stream B lost");
        }

        // A third stream takes the least recently used slot (A's); B goes on, A starts over.
        Assert.False(Read(two, 90_000, out _, out _));
        Assert.True(Read(two, b, out _, out _), "stream B lost, though A was older");
        Assert.False(Read(two, a, out _, out _));
    }

    private static bool Read(SequentialStreamTracker tracker, long block, out long from, out long to) =>
        tracker.Track(block * Block, Block, allowReadahead: true, out from, out to);
}
