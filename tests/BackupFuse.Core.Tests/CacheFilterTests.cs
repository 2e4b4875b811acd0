using System.Collections.Concurrent;
using BackupFuse.Core;
using BackupFuse.Testing;
using Xunit;

namespace BackupFuse.Core.Tests;

/// <summary>The cache over a pattern with zero blocks, tiny capacity (constant eviction) and readahead on.</summary>
public sealed class CacheFilterConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var pattern = new PatternSource((3 * 1024 * 1024) + 4097, seed: 9, zeroBlock: 65536, zeroEvery: 3);
        var bytes = new byte[pattern.Length];
        pattern.Read(0, bytes);
        return (new CacheFilter(new SlowSource(pattern), capacityBytes: 4 * 65536, readaheadBytes: 256 * 1024), bytes);
    }
}

/// <summary>The cache over a three-layer chain with unallocated areas, small blocks and a mid-size capacity.</summary>
public sealed class CacheFilterChainConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var (chain, expected) = ChainFixture.Build(seed: 8);
        return (new CacheFilter(chain, capacityBytes: 64 * 4096, cacheBlockSize: 4096, readaheadBytes: 64 * 1024), expected);
    }
}

public sealed class CacheFilterTests
{
    private const int Block = 65536;

    [Fact]
    public void RepeatedReadsAreServedFromTheCache()
    {
        var counting = new CountingSource(new SlowSource(new PatternSource(16 * Block, seed: 1)));
        using var cache = new CacheFilter(counting, capacityBytes: 8 * Block, readaheadBytes: 0);
        var expected = Expected(cache.Length, seed: 1);
        var buffer = new byte[4096];
        for (int round = 0; round < 3; round++)
        {
            for (int b = 0; b < 4; b++)
            {
                long offset = (b * Block) + 1000;
                cache.Read(offset, buffer);
                Assert.True(expected.AsSpan((int)offset, buffer.Length).SequenceEqual(buffer));
            }
        }

        Assert.Equal(4, counting.Reads);
        var s = cache.Statistics;
        Assert.Equal(4, s.Misses);
        Assert.Equal(8, s.Hits);
        Assert.Equal(4 * Block, s.BytesCached);
    }

    [Fact]
    public void AMissLoadedOnAPoolThreadCountsOnce_NotAlsoAsTheRequestsHitOrWait()
    {
        // One read of 8 uncached blocks: this thread loads the first (slow) and hands the rest to the pool, whose
        // threads load them meanwhile (enough pool threads at once: the minimum is raised for this test). Each block is
        // still one miss, not also a hit or a wait of the request that queued it.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 8), io);
        try
        {
            var counting = new CountingSource(new SlowSource(new PatternSource(16 * Block, seed: 3), delayMs: 200, slowBelow: Block));
            using var cache = new CacheFilter(counting, capacityBytes: 16 * Block, readaheadBytes: 0);
            var buffer = new byte[8 * Block];
            cache.Read(0, buffer);
            Assert.True(Expected(cache.Length, seed: 3).AsSpan(0, buffer.Length).SequenceEqual(buffer));
            var s = cache.Statistics;
            Assert.True(counting.MaxConcurrent >= 2, "the pool loaded no block beside this thread's");
            Assert.Equal(8, counting.Reads);
            Assert.Equal(8, s.Misses);
            Assert.Equal(0, s.Hits);
            Assert.Equal(0, s.CoalescedWaits);

            cache.Read(0, buffer); // now every block is a hit
            Assert.Equal(8, cache.Statistics.Hits);
            Assert.Equal(8, cache.Statistics.Misses);
        }
        finally
        {
            ThreadPool.SetMinThreads(workers, io);
        }
    }

    [Fact]
    public void PartsTheLayerReadsCheaplyGoStraightThroughUncached_OtherPartsLoadTheirBlock()
    {
        var counting = new CountingSource(new PatternSource(16 * Block, seed: 3));
        using var cache = new CacheFilter(new CheapPartsSource(counting, cheapBelow: 8 * Block), capacityBytes: 16 * Block, readaheadBytes: 0);
        var expected = Expected(cache.Length, seed: 3);
        var small = new byte[4096];
        for (int round = 0; round < 2; round++)
        {
            for (int b = 0; b < 16; b++)
            {
                long offset = (b * Block) + 1000;
                cache.Read(offset, small);
                Assert.True(expected.AsSpan((int)offset, small.Length).SequenceEqual(small), $"bytes at {offset}");
            }
        }

        // Blocks 0..7 (cheap parts): every 4 KiB read went below, 4 KiB each, nothing cached. Blocks 8..15: loaded once.
        Assert.Equal((2 * 8) + 8, counting.Reads);
        var s = cache.Statistics;
        Assert.Equal(8 * Block, s.BytesCached);
        Assert.Equal(8, s.Hits);
        Assert.Equal(16 + 8, s.Misses);
    }

    [Fact]
    public void MemoryStaysWithinTheCapacityAndLeastRecentlyUsedBlocksGo()
    {
        var counting = new CountingSource(new SlowSource(new PatternSource(64 * Block, seed: 2)));
        using var cache = new CacheFilter(counting, capacityBytes: 5 * Block, readaheadBytes: 0);
        var expected = Expected(cache.Length, seed: 2);
        var small = new byte[100];
        for (int b = 0; b < 64; b++)
        {
            cache.Read(b * (long)Block, small);
            Assert.InRange(cache.Statistics.BytesCached, 0, 5 * Block);
            Assert.True(expected.AsSpan(b * Block, small.Length).SequenceEqual(small));
        }

        Assert.Equal(64 - 5, cache.Statistics.Evictions);
        int before = counting.Reads;
        cache.Read(63L * Block, small); // most recent: cached
        Assert.Equal(before, counting.Reads);
        cache.Read(0, small);           // long evicted: loaded again
        Assert.Equal(before + 1, counting.Reads);
    }

    [Fact]
    public void ConcurrentReadersStayWithinTheCapacity()
    {
        var pattern = new PatternSource(48 * Block, seed: 3, zeroBlock: Block, zeroEvery: 5);
        using var cache = new CacheFilter(new SlowSource(pattern), capacityBytes: 3 * Block, readaheadBytes: 2 * Block);
        var expected = Expected(pattern);
        long maxSeen = 0;
        Parallel.For(0, 6, t =>
        {
            var rng = new Random(t);
            for (int i = 0; i < 60; i++)
            {
                long offset = rng.NextInt64(cache.Length);
                int length = (int)Math.Min(cache.Length - offset, rng.Next(1, 5 * Block));
                var buffer = new byte[length];
                cache.Read(offset, buffer);
                Assert.True(expected.AsSpan((int)offset, length).SequenceEqual(buffer), $"read at {offset}+{length} differs");
                long held = cache.Statistics.BytesCached;
                long seen;
                while (held > (seen = Interlocked.Read(ref maxSeen)) && Interlocked.CompareExchange(ref maxSeen, held, seen) != seen)
                {
                }
            }
        });

        Assert.InRange(maxSeen, 1, 3 * Block);
    }

    [Fact]
    public void ConcurrentMissesOnOneBlockLoadItOnce()
    {
        var gated = new GatedSource(new PatternSource(4 * Block, seed: 4));
        using var cache = new CacheFilter(gated, readaheadBytes: 0);
        var expected = Expected(cache.Length, seed: 4);
        const int readers = 6;
        var results = new ConcurrentBag<bool>();
        var threads = Enumerable.Range(0, readers).Select(i => new Thread(() =>
        {
            var buffer = new byte[512];
            long offset = Block + (i * 4096);
            cache.Read(offset, buffer);
            results.Add(expected.AsSpan((int)offset, buffer.Length).SequenceEqual(buffer));
        })).ToList();

        threads[0].Start();
        Assert.True(gated.Entered.Wait(TimeSpan.FromSeconds(10)), "the first reader never reached the source");
        foreach (var t in threads.Skip(1))
        {
            t.Start();
        }

        WaitUntil(() => cache.Statistics.CoalescedWaits == readers - 1, "the other readers to wait for the first one's load");
        gated.Release.Set();
        foreach (var t in threads)
        {
            Assert.True(t.Join(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(1, gated.Reads);
        Assert.Equal(readers, results.Count(r => r));
    }

    [Fact]
    public void RandomReadsDoNotTriggerReadahead()
    {
        var counting = new CountingSource(new SlowSource(new PatternSource(256 * Block, seed: 6)));
        using var cache = new CacheFilter(counting, readaheadBytes: 8 * Block);
        var rng = new Random(6);
        var buffer = new byte[4096];
        for (int i = 0; i < 40; i++)
        {
            cache.Read(rng.Next(256) * (long)Block, buffer);
        }

        Assert.Equal(0, cache.Statistics.ReadaheadLoads);
    }

    [Fact]
    public void ZeroBlocksAreClearedWithoutLoadingOrCaching()
    {
        var pattern = new PatternSource(8 * Block, seed: 8, zeroBlock: Block, zeroEvery: 2);
        var counting = new CountingSource(pattern);
        using var cache = new CacheFilter(counting, readaheadBytes: 0);
        var buffer = new byte[Block];
        buffer.AsSpan().Fill(0xAA);
        long zeroOffset = Enumerable.Range(0, 8).Select(b => b * (long)Block).First(o => pattern.GetExtent(o, Block).Kind == ExtentKind.Zero);
        cache.Read(zeroOffset, buffer);
        Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(0, counting.Reads);
        Assert.Equal(1, cache.Statistics.ZeroBlocks);
        Assert.Equal(0, cache.Statistics.BytesCached);
    }

    [Fact]
    public void CorruptBlocksRaiseOnEveryReadAndAreNeverCached()
    {
        var pattern = new PatternSource(16 * Block, seed: 9);
        var faulty = new FaultInjectingFilter(new SlowSource(pattern), 5L * Block, 10);
        using var cache = new CacheFilter(faulty, readaheadBytes: 8 * Block);
        var expected = Expected(pattern);
        var buffer = new byte[Block];
        for (int b = 0; b < 5; b++)
        {
            cache.Read(b * (long)Block, buffer); // sequential: readahead runs into the bad block and fails quietly
        }

        for (int attempt = 0; attempt < 3; attempt++)
        {
            Assert.Throws<InvalidDataException>(() => cache.Read(5L * Block, new byte[100]));
        }

        cache.Read(6L * Block, buffer);
        Assert.True(expected.AsSpan(6 * Block, Block).SequenceEqual(buffer));
        Assert.InRange(cache.Statistics.BytesCached, 0, cache.CapacityBytes);
    }

    [Fact]
    public void CheapLayersAreReadAroundTheCacheForWholeBlocks()
    {
        var expected = Expected(64 * Block, seed: 10);
        using var cache = new CacheFilter(new PlainBlocksSource(new MemorySource(expected), Block), readaheadBytes: 8 * Block);
        var buffer = new byte[4 * Block];
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < 16; i++)
            {
                cache.Read(i * 4L * Block, buffer);
                Assert.True(expected.AsSpan(i * 4 * Block, buffer.Length).SequenceEqual(buffer));
            }
        }

        Assert.True(cache.LoadsAreCheap, "copies from memory should measure as cheap");
        long cachedBefore = cache.Statistics.BytesCached;
        cache.Read(0, buffer);
        Assert.Equal(cachedBefore, cache.Statistics.BytesCached);
        var part = new byte[100];
        cache.Read((40L * Block) + 7, part); // partial blocks still go through the cache
        Assert.Equal(cachedBefore + Block, cache.Statistics.BytesCached);
        Assert.True(expected.AsSpan((40 * Block) + 7, part.Length).SequenceEqual(part));
    }

    [Fact]
    public void FastLoadsOfBlocksToDecodeNeverCountAsCheap_ReadaheadStaysOn()
    {
        // A layer whose blocks are not stored as they read (compressed chunks: ReadsPartCheaply false for a whole
        // block) is always read through the cache with readahead, however fast its loads: a fast codec on text used to
        // win the vote and switch readahead off in the middle of a compressed image. Whole plain blocks of the same
        // speed do win it.
        var expected = Expected(128 * Block, seed: 11);
        var codedSource = new TrackedSource(new MemorySource(expected), Block, isPlain: _ => false);
        var plainSource = new TrackedSource(new MemorySource(expected), Block, isPlain: _ => true);
        using var coded = new CacheFilter(codedSource, readaheadBytes: 8 * Block);
        using var plain = new CacheFilter(plainSource, readaheadBytes: 8 * Block);
        var buffer = new byte[4 * Block];
        foreach (var cache in new[] { coded, plain })
        {
            for (int round = 0; round < 3; round++)
            {
                for (int i = 0; i < 16; i++)
                {
                    cache.Read(i * 4L * Block, buffer);
                    Assert.True(expected.AsSpan(i * 4 * Block, buffer.Length).SequenceEqual(buffer));
                }
            }
        }

        Assert.False(coded.LoadsAreCheap, "blocks to decode must never vote");
        Assert.True(plain.LoadsAreCheap, "copies of plain blocks from memory should measure as cheap");

        // After the verdict, blocks never read before (a seek: no readahead): read twice, a block to decode is loaded
        // once and then served from the cache, a plain block is read straight through both times.
        for (int pass = 0; pass < 2; pass++)
        {
            coded.Read(100L * Block, buffer);
            Assert.True(expected.AsSpan(100 * Block, buffer.Length).SequenceEqual(buffer));
            plain.Read(100L * Block, buffer);
            Assert.True(expected.AsSpan(100 * Block, buffer.Length).SequenceEqual(buffer));
        }

        Assert.Equal(1, codedSource.Reads(100));
        Assert.Equal(2, plainSource.Reads(100));

        // And a sequential reader of blocks to decode gets readahead: the blocks after its last read are queued, and
        // nobody but the pool loads them.
        for (int i = 26; i < 30; i++)
        {
            coded.Read(i * 4L * Block, buffer); // blocks 104-119, continuing the stream at 100
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (codedSource.Reads(120) == 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        Assert.Equal(1, codedSource.Reads(120));
    }

    [Fact]
    public void InALayerVotedCheap_BlocksToDecodeStillGetReadahead_PlainBlocksDoNot()
    {
        // A zstd image keeps incompressible chunks raw: those vote cheap, and the compressed ones between them must
        // still be read ahead (the plain ones are read straight through when asked for, so readahead skips them).
        var expected = Expected(128 * Block, seed: 14);
        var mixed = new TrackedSource(new MemorySource(expected), Block, isPlain: block => block % 2 == 0);
        using var cache = new CacheFilter(mixed, readaheadBytes: 8 * Block);
        var buffer = new byte[4 * Block];
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < 16; i++)
            {
                cache.Read(i * 4L * Block, buffer);
            }
        }

        Assert.True(cache.LoadsAreCheap, "copies of the plain blocks from memory should measure as cheap");
        for (int i = 16; i < 24; i++)
        {
            cache.Read(i * 4L * Block, buffer); // blocks 64-95
            Assert.True(expected.AsSpan(i * 4 * Block, buffer.Length).SequenceEqual(buffer));
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!(mixed.Reads(97) > 0 && mixed.Reads(99) > 0) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        Assert.True(mixed.Reads(97) > 0 && mixed.Reads(99) > 0, "the blocks to decode after the reader were not read ahead");
        Assert.True(mixed.Reads(96) == 0 && mixed.Reads(98) == 0, "plain blocks of a cheap layer were read ahead");
    }

    [Fact]
    public void SplitDirectReadsReturnTheRightBytesAndTheHelpersErrors()
    {
        var expected = Expected(64 * Block, seed: 12);
        var faulty = new FaultInjectingFilter(new MemorySource(expected), (62L * Block) + 100, 10);
        using var cache = new CacheFilter(new PlainBlocksSource(faulty, Block), readaheadBytes: 8 * Block);
        var buffer = new byte[8 * Block];
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 7; i++)
            {
                cache.Read(i * 8L * Block, buffer); // whole blocks: split between this thread and a pool thread
                Assert.True(expected.AsSpan(i * 8 * Block, buffer.Length).SequenceEqual(buffer), $"round {round}, read {i}");
            }
        }

        Assert.True(cache.LoadsAreCheap, "copies from memory should measure as cheap");
        // Block 62 is bad and lies in the last half of this request, the half a pool thread reads.
        var error = Assert.Throws<InvalidDataException>(() => cache.Read(56L * Block, buffer));
        Assert.Contains("injected", error.Message, StringComparison.OrdinalIgnoreCase);
        cache.Read(48L * Block, buffer);
        Assert.True(expected.AsSpan(48 * Block, buffer.Length).SequenceEqual(buffer));
    }

    [Fact]
    public void AStalePoolItemRunningWhileTheNextSplitIsPreparedCannotTakeAHalfBuiltList()
    {
        // A helper's work item left in the pool's queue (its owner took the work back) may run at any time, e.g.
        // while the next request on that thread is still adding blocks. Run it exactly there: it must not claim
        // the half-built list (claimed, it would run the blocks added so far, report done, and the reader would
        // return a buffer whose later blocks were never read).
        var expected = Expected(128 * Block, seed: 13);
        using var cache = new CacheFilter(new PlainBlocksSource(new MemorySource(expected), Block), readaheadBytes: 0);
        var buffer = new byte[8 * Block];
        for (int i = 0; i < 7; i++)
        {
            cache.Read(i * 8L * Block, buffer); // until the cost vote calls the layer cheap
        }

        Assert.True(cache.LoadsAreCheap, "copies from memory should measure as cheap");
        int staleRuns = 0;
        CacheFilter.PreparedForTests = (owner, helper) =>
        {
            if (ReferenceEquals(owner, cache))
            {
                helper.Execute();
                staleRuns++;
            }
        };
        try
        {
            for (int i = 0; i < 8; i++)
            {
                Array.Clear(buffer);
                long offset = (64 + (i * 8L)) * Block; // never read before: whole direct blocks, split
                cache.Read(offset, buffer);
                Assert.True(expected.AsSpan((int)offset, buffer.Length).SequenceEqual(buffer), $"read {i}");
            }
        }
        finally
        {
            CacheFilter.PreparedForTests = null;
        }

        Assert.Equal(8, staleRuns);
    }

    [Fact]
    public void DisposeWaitsForReadaheadAndDisposesTheLayerBelow()
    {
        var counting = new CountingSource(new SlowSource(new PatternSource(64 * Block, seed: 11), delayMs: 5));
        var cache = new CacheFilter(counting, readaheadBytes: 16 * Block);
        var buffer = new byte[Block];
        cache.Read(0, buffer);
        cache.Read(Block, buffer);
        cache.Dispose();
        Assert.True(counting.Disposed);
        Assert.Equal(0, counting.Active);
        Assert.Throws<ObjectDisposedException>(() => cache.Read(0, buffer));
    }

    internal static void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    internal static byte[] Expected(long length, ulong seed) => Expected(new PatternSource(length, seed));

    internal static byte[] Expected(IBlockSource source)
    {
        var bytes = new byte[source.Length];
        source.Read(0, bytes);
        return bytes;
    }
}
