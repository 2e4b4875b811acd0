using BackupFuse.Core;
using BackupFuse.Testing;
using Xunit;

namespace BackupFuse.Core.Tests;

/// <summary>
/// One CacheBudget shared by several CacheFilters (one per open plugin in the daemon): together they never hold more
/// than the budget, an idle cache's blocks make room for a busy one, and a closed cache gives every byte back.
/// </summary>
public sealed class CacheBudgetTests
{
    private const int Block = 65536;

    [Fact]
    public void ManyCachesReadingInParallelStayWithinOneBudgetAndReturnExactBytes()
    {
        var budget = new CacheBudget(8 * Block);
        const int Caches = 6;
        var sources = Enumerable.Range(0, Caches).Select(i => new PatternSource(32 * Block, seed: (ulong)(i + 1), zeroBlock: Block, zeroEvery: 5)).ToArray();
        var caches = sources.Select(s => new CacheFilter(s, budget, readaheadBytes: 4 * Block)).ToArray();
        long maxHeld = 0;
        int failures = 0;
        using var done = new CancellationTokenSource();
        var sampler = new Thread(() =>
        {
            while (!done.IsCancellationRequested)
            {
                long held = budget.HeldBytes;
                long seen;
                while (held > (seen = Interlocked.Read(ref maxHeld)) && Interlocked.CompareExchange(ref maxHeld, held, seen) != seen)
                {
                }
            }
        });
        sampler.Start();
        var readers = Enumerable.Range(0, Caches).Select(i => new Thread(() =>
        {
            var rng = new Random(i);
            var buffer = new byte[3 * 4096];
            var expected = new byte[buffer.Length];
            for (int n = 0; n < 400; n++)
            {
                // Partial-block reads always go through the cache; a sequential run now and then starts readahead.
                long offset = n % 50 < 10 ? (n % 50) * (long)buffer.Length : rng.NextInt64(sources[i].Length - buffer.Length);
                caches[i].Read(offset, buffer);
                sources[i].Read(offset, expected);
                if (!buffer.AsSpan().SequenceEqual(expected))
                {
                    Interlocked.Increment(ref failures);
                }
            }
        })).ToList();
        readers.ForEach(r => r.Start());
        readers.ForEach(r => r.Join());
        done.Cancel();
        sampler.Join();

        Assert.Equal(0, failures);
        Assert.True(maxHeld <= budget.CapacityBytes, $"the caches held {maxHeld} bytes together, over the budget of {budget.CapacityBytes}");
        Assert.True(caches.Sum(c => c.Statistics.BytesCached) <= budget.CapacityBytes);
        Assert.True(budget.Evictions > 0, "the budget never evicted: the test did not put it under pressure");
        Assert.Equal(budget.CapacityBytes, caches[0].CapacityBytes);

        foreach (var cache in caches)
        {
            cache.Dispose();
        }

        Assert.Equal(0, budget.HeldBytes);
        Assert.Equal(0, budget.MemberCount);
    }

    [Fact]
    public void AnIdleCachesBlocksMakeRoomForABusyOne()
    {
        var budget = new CacheBudget(4 * Block);
        var countingB = new CountingSource(new PatternSource(16 * Block, seed: 2));
        using var a = new CacheFilter(new PatternSource(16 * Block, seed: 1), budget, readaheadBytes: 0);
        using var b = new CacheFilter(countingB, budget, readaheadBytes: 0);
        var buffer = new byte[4096];
        for (int i = 0; i < 4; i++)
        {
            a.Read(i * (long)Block, buffer);
        }

        Assert.Equal(4 * Block, a.Statistics.BytesCached);
        for (int i = 0; i < 4; i++)
        {
            b.Read(i * (long)Block, buffer);
        }

        // B took the whole budget from A (A's blocks were the least recently used), and now hits.
        Assert.Equal(0, a.Statistics.BytesCached);
        Assert.Equal(4 * Block, b.Statistics.BytesCached);
        int loads = countingB.Reads;
        for (int i = 0; i < 4; i++)
        {
            b.Read((i * (long)Block) + 8192, buffer);
        }

        Assert.Equal(loads, countingB.Reads);
        Assert.Equal(4, budget.Evictions);
    }

    [Fact]
    public void TheLeastRecentlyUsedBlockGoesWhicheverCacheHoldsIt()
    {
        var budget = new CacheBudget(3 * Block);
        var countingA = new CountingSource(new PatternSource(16 * Block, seed: 1));
        using var a = new CacheFilter(countingA, budget, readaheadBytes: 0);
        using var b = new CacheFilter(new PatternSource(16 * Block, seed: 2), budget, readaheadBytes: 0);
        var buffer = new byte[4096];
        a.Read(0, buffer);              // a0 (oldest)
        b.Read(0, buffer);              // b0
        a.Read(Block, buffer);          // a1
        a.Read(0, buffer);              // a0 used again: b0 is now the oldest
        b.Read(2L * Block, buffer);     // needs room: b0 goes, not a0
        int loads = countingA.Reads;
        a.Read(100, buffer);
        a.Read(Block + 100, buffer);
        Assert.Equal(loads, countingA.Reads);
        Assert.Equal(Block, b.Statistics.BytesCached);
    }

    [Fact]
    public void ABudgetSmallerThanABlockCachesNothingAndStillReadsExactly()
    {
        var budget = new CacheBudget(Block / 2);
        var pattern = new PatternSource(8 * Block, seed: 3);
        using var cache = new CacheFilter(pattern, budget, readaheadBytes: 2 * Block);
        var buffer = new byte[5000];
        var expected = new byte[buffer.Length];
        for (long offset = 0; offset < pattern.Length - buffer.Length; offset += 7777)
        {
            cache.Read(offset, buffer);
            pattern.Read(offset, expected);
            Assert.True(buffer.AsSpan().SequenceEqual(expected));
        }

        Assert.Equal(0, budget.HeldBytes);
        Assert.Equal(0, cache.Statistics.BytesCached);
    }

    [Fact]
    public void ClosingACacheWhileAReadHoldsABlockReturnsItsBytesWhenTheReadEnds()
    {
        var budget = new CacheBudget(4 * Block);
        using var gate = new ManualResetEventSlim();
        using var entered = new ManualResetEventSlim();
        var cache = new CacheFilter(new GatedSource(new PatternSource(8 * Block, seed: 4), gate, entered), budget, readaheadBytes: 0);
        var reader = new Thread(() =>
        {
            try
            {
                cache.Read(10, new byte[100]);
            }
            catch (ObjectDisposedException)
            {
            }
        });
        reader.Start();
        entered.Wait();
        Assert.Equal(Block, budget.HeldBytes);
        var closer = new Thread(cache.Dispose);
        closer.Start();
        gate.Set();
        reader.Join();
        closer.Join();
        Assert.Equal(0, budget.HeldBytes);
        Assert.Equal(0, budget.MemberCount);
    }

    private sealed class GatedSource(IBlockSource next, ManualResetEventSlim gate, ManualResetEventSlim entered) : BlockFilter(next)
    {
        public override void Read(long offset, Span<byte> buffer)
        {
            entered.Set();
            gate.Wait();
            base.Read(offset, buffer);
        }
    }

    [Fact]
    public void TheBudgetCountsEveryMembersHitsAndMisses_AndKeepsThemWhenAMemberCloses()
    {
        var budget = new CacheBudget(64 * Block);
        var a = new CacheFilter(new PatternSource(8 * Block, seed: 1), budget);
        using var b = new CacheFilter(new PatternSource(8 * Block, seed: 2), budget);
        var buffer = new byte[4096]; // part of a block: always through the cache
        a.Read(0, buffer);
        a.Read(4096, buffer);
        b.Read(3 * Block, buffer);
        b.Read(3 * Block, buffer);
        Assert.Equal(a.Statistics.Hits + b.Statistics.Hits, budget.Hits);
        Assert.Equal(a.Statistics.Misses + b.Statistics.Misses, budget.Misses);
        Assert.Equal(a.Statistics.CoalescedWaits + b.Statistics.CoalescedWaits, budget.Waits);
        Assert.True(budget.Hits >= 2 && budget.Misses >= 2, $"{budget.Hits} hits, {budget.Misses} misses");

        long hits = budget.Hits, misses = budget.Misses;
        a.Dispose();
        Assert.Equal((hits, misses), (budget.Hits, budget.Misses));
    }
}
