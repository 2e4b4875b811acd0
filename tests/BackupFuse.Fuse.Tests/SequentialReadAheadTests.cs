using BackupFuse.Core;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>SequentialReadAhead on its own: what a sequential reader gets, and what it never gets.</summary>
public sealed class SequentialReadAheadTests
{
    private const int Request = 128 * 1024;
    private const long Size = 16L * Request;

    [Fact]
    public void SequentialReader_IsServedAhead_WithTheSourceBytes()
    {
        var source = new WatchedSource(new PatternSource(Size, seed: 3));
        using var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[Request];
        for (long offset = 0; offset < Size; offset += Request)
        {
            Read(readAhead, source, offset, buffer);
            AssertPattern(source.Inner, offset, buffer);
        }

        // The first two reads are the reader's own (the second shows the stream); every later one was read ahead.
        Assert.Equal((Size / Request) - 2, readAhead.Hits);
        Assert.True(source.ReadsOffThread >= readAhead.Hits, $"{source.ReadsOffThread} reads on other threads for {readAhead.Hits} served ahead");
    }

    [Fact]
    public void RandomReader_IsNeverServedAhead()
    {
        var source = new WatchedSource(new PatternSource(Size, seed: 3));
        using var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[4096];
        foreach (long offset in new long[] { 5 * Request, Request, 9 * Request, 3 * Request, 12 * Request })
        {
            Read(readAhead, source, offset, buffer);
            AssertPattern(source.Inner, offset, buffer);
        }

        Assert.Equal(0, readAhead.Hits);
        Assert.Equal(0, source.ReadsOffThread);
    }

    [Fact]
    public void ReadAhead_StopsAtHoles()
    {
        // Every other 128 KiB block reads as zeros (Zero extents): the range after a data block is never read ahead.
        var source = new WatchedSource(new PatternSource(Size, seed: 3, zeroBlock: Request, zeroEvery: 2));
        using var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[Request];
        for (long offset = 0; offset < Size; offset += Request)
        {
            Read(readAhead, source, offset, buffer);
            AssertPattern(source.Inner, offset, buffer);
        }

        Assert.True(source.Inner.GetExtent(0, Request).Kind == ExtentKind.Zero, "the test needs Zero extents");
        Assert.True(source.Inner.GetExtent(Request, Request).Kind == ExtentKind.Data, "and Data extents");
        Assert.Equal(source.ReadsOffThread, readAhead.Hits);
        Assert.Equal((Size / Request / 2) - 1, readAhead.Hits); // every data block after the first, none of the holes
    }

    [Fact]
    public void FailedReadAhead_LeavesTheRead_ToTheReader()
    {
        // The read-ahead of the third range fails once; the reader's own read of it succeeds and gets the right bytes.
        var source = new WatchedSource(new PatternSource(Size, seed: 3)) { FailOnceOffThreadAt = 2 * Request };
        using var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[Request];
        for (long offset = 0; offset < 4 * Request; offset += Request)
        {
            Read(readAhead, source, offset, buffer);
            AssertPattern(source.Inner, offset, buffer);
        }

        Assert.Equal(1, source.Failures);
        Assert.Equal(1, readAhead.Hits); // the fourth range, read ahead after the reader read the third itself
    }

    [Fact]
    public void ShorterRead_AtTheStagedOffset_IsServed_AndADifferentOffsetIsNot()
    {
        var source = new WatchedSource(new PatternSource(Size, seed: 3));
        using var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[Request];
        Read(readAhead, source, 0, buffer);
        Read(readAhead, source, Request, buffer); // stages [2R, 3R)

        Assert.False(readAhead.TryServe((2 * Request) + 512, buffer.AsSpan(0, 4096)));
        var shorter = new byte[4096];
        Assert.True(readAhead.TryServe(2 * Request, shorter));
        AssertPattern(source.Inner, 2 * Request, shorter);
        Assert.False(readAhead.TryServe(2 * Request, shorter)); // used once
    }

    [Fact]
    public void QueuedReadAhead_IsTakenBack_AndAStaleItemOnlyRunsCompleteWork()
    {
        // The "pool" keeps the items; nothing runs until the test says so.
        var queued = new List<IThreadPoolWorkItem>();
        var source = new WatchedSource(new PatternSource(Size, seed: 3));
        using var readAhead = new SequentialReadAhead(source, queued.Add);
        var buffer = new byte[Request];
        Read(readAhead, source, 0, buffer, settle: false);
        Read(readAhead, source, Request, buffer, settle: false);
        Assert.Single(queued); // [2R, 3R), not started

        // The reader comes before the pool: it takes the read back and reads itself (on its own thread).
        Read(readAhead, source, 2 * Request, buffer, settle: false);
        AssertPattern(source.Inner, 2 * Request, buffer);
        Assert.Equal(0, readAhead.Hits);
        Assert.Equal(2, queued.Count); // the stale item of [2R, 3R) and the new one of [3R, 4R)

        // The pool's queue holds the same object twice. Whichever entry runs first claims the new range, which is
        // completely set up, and reads it; the other finds it claimed and reads nothing.
        queued[0].Execute();
        Assert.Equal(1, source.ReadsAt(3 * Request));
        queued[1].Execute();
        Read(readAhead, source, 3 * Request, buffer, settle: false);
        AssertPattern(source.Inner, 3 * Request, buffer);
        Assert.Equal(1, readAhead.Hits);
        Assert.Equal(1, source.ReadsAt(3 * Request)); // read once, by the item, not again by the reader
        Assert.Equal(1, source.ReadsAt(2 * Request)); // the taken-back range: only the reader's own read
    }

    [Fact]
    public void UnusedReadAhead_IsDropped_AndTheStreamGoesOn()
    {
        // The reader's request size changes: the staged range is too short for the next read, which reads itself;
        // the finished read-ahead nobody used is dropped and the range after that read is staged instead.
        var queued = new List<IThreadPoolWorkItem>();
        var source = new WatchedSource(new PatternSource(Size, seed: 3));
        using var readAhead = new SequentialReadAhead(source, queued.Add);
        var small = new byte[Request];
        var large = new byte[2 * Request];
        Read(readAhead, source, 0, small, settle: false);
        Read(readAhead, source, Request, small, settle: false); // stages [2R, 3R)
        queued[^1].Execute();
        Read(readAhead, source, 2 * Request, large, settle: false); // [2R, 4R): not served, stages [4R, 6R)
        AssertPattern(source.Inner, 2 * Request, large);
        Assert.Equal(0, readAhead.Hits);
        queued[^1].Execute();
        Read(readAhead, source, 4 * Request, large, settle: false);
        AssertPattern(source.Inner, 4 * Request, large);
        Assert.Equal(1, readAhead.Hits);
        Assert.Equal(1, source.ReadsAt(4 * Request));
    }

    [Fact]
    public void ALayerThatCannotTellWhatFollows_GetsNoReadAhead_AndTheReadStillSucceeds()
    {
        var source = new WatchedSource(new PatternSource(Size, seed: 3)) { ExtentFailsFrom = 2 * Request };
        using var readAhead = new SequentialReadAhead(source, _ => Assert.Fail("nothing may be queued"));
        var buffer = new byte[Request];
        Read(readAhead, source, 0, buffer, settle: false);
        Read(readAhead, source, Request, buffer, settle: false); // GetExtent of [2R, 3R) throws: no read-ahead, no error
        AssertPattern(source.Inner, Request, buffer);
        Assert.Equal(0, readAhead.Hits);
    }

    [Fact]
    public void Dispose_WaitsForTheReadAheadInFlight()
    {
        var source = new WatchedSource(new PatternSource(Size, seed: 3)) { Gate = new ManualResetEventSlim(false) };
        var readAhead = new SequentialReadAhead(source);
        var buffer = new byte[Request];
        Read(readAhead, source, 0, buffer);
        Read(readAhead, source, Request, buffer, settle: false); // the read-ahead of [2R, 3R) now waits at the gate
        Assert.True(source.Blocked.Wait(TimeSpan.FromSeconds(10)), "the read-ahead never started");

        var disposing = new Thread(readAhead.Dispose);
        disposing.Start();
        Assert.False(disposing.Join(300), "Dispose returned while the read-ahead was still reading into its buffer");
        source.Gate.Set();
        Assert.True(disposing.Join(TimeSpan.FromSeconds(10)), "Dispose never returned");
    }

    /// <summary>What VirtualFile.Read does with a read-ahead.</summary>
    private static void Read(SequentialReadAhead readAhead, IBlockSource source, long offset, Span<byte> buffer, bool settle = true)
    {
        bool served = readAhead.TryServe(offset, buffer);
        if (!served)
        {
            source.Read(offset, buffer);
        }

        readAhead.Completed(offset, buffer.Length, served, source.Length);
        if (settle)
        {
            // A reader's next request comes after a round trip through the kernel; here it would come at once and
            // find the read-ahead not yet started (taken back), which is right but not what these tests look at.
            Assert.True(readAhead.WaitUntilSettled(TimeSpan.FromSeconds(10)), "the read-ahead never finished");
        }
    }

    private static void AssertPattern(PatternSource expected, long offset, ReadOnlySpan<byte> actual)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            if (actual[i] != expected.ByteAt(offset + i))
            {
                Assert.Fail($"byte {offset + i}: {actual[i]}, expected {expected.ByteAt(offset + i)}");
            }
        }
    }

    /// <summary>A source that counts reads made on threads other than the test's, and can fail or block them.</summary>
    private sealed class WatchedSource(PatternSource inner) : BlockSource
    {
        private readonly int _testThread = Environment.CurrentManagedThreadId;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<long, int> _readsAt = new();
        private int _readsOffThread;
        private int _failures;

        public PatternSource Inner { get; } = inner;

        public long FailOnceOffThreadAt { get; init; } = -1;

        public ManualResetEventSlim? Gate { get; init; }

        public long ExtentFailsFrom { get; init; } = long.MaxValue;

        public ManualResetEventSlim Blocked { get; } = new(false);

        public int ReadsOffThread => Volatile.Read(ref _readsOffThread);

        public int Failures => Volatile.Read(ref _failures);

        public int ReadsAt(long offset) => _readsAt.GetValueOrDefault(offset);

        public override long Length => Inner.Length;

        public override Extent GetExtent(long offset, long maxLength) =>
            offset >= ExtentFailsFrom ? throw new InvalidDataException("test: a damaged index page") : Inner.GetExtent(offset, maxLength);

        public override void Read(long offset, Span<byte> buffer)
        {
            _readsAt.AddOrUpdate(offset, 1, (_, n) => n + 1);
            if (Environment.CurrentManagedThreadId != _testThread)
            {
                Interlocked.Increment(ref _readsOffThread);
                if (offset == FailOnceOffThreadAt && Interlocked.CompareExchange(ref _failures, 1, 0) == 0)
                {
                    throw new InvalidDataException("test: the read-ahead fails once");
                }

                if (Gate is { } gate)
                {
                    Blocked.Set();
                    gate.Wait();
                }
            }

            Inner.Read(offset, buffer);
        }
    }
}
