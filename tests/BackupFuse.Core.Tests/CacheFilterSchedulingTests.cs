using BackupFuse.Core;
using BackupFuse.Testing;
using Xunit;

namespace BackupFuse.Core.Tests;

/// <summary>Tests that need the thread pool to run the cache's queued loads.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ThreadPoolCollection
{
    public const string Name = "thread pool";
}

/// <summary>
/// Parallel loads and readahead run on the thread pool. Other test classes running beside these would keep the pool's
/// threads asleep and the reader would then claim every queued block itself (correct, but nothing left to observe),
/// so these run alone and make sure the pool has threads to spare. The parallel-load test does not depend on timing at
/// all: its first load waits until a second one is running.
/// </summary>
[Collection(ThreadPoolCollection.Name)]
public sealed class CacheFilterSchedulingTests
{
    private const int Block = 65536;

    public CacheFilterSchedulingTests()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, Environment.ProcessorCount + 8), io);
    }

    [Fact]
    public void ALargeReadLoadsItsBlocksInParallel()
    {
        var gate = new CompanionGateSource(new PatternSource(32 * Block, seed: 7));
        var counting = new CountingSource(gate);
        using var cache = new CacheFilter(counting, readaheadBytes: 0);
        var expected = CacheFilterTests.Expected(cache.Length, seed: 7);
        var buffer = new byte[16 * Block];
        cache.Read(Block / 2, buffer);
        Assert.True(expected.AsSpan(Block / 2, buffer.Length).SequenceEqual(buffer));
        Assert.True(gate.CompanionSeen, "the first load waited 10 s and no other load started beside it");
        Assert.True(counting.MaxConcurrent >= 2, $"loads ran one at a time (max concurrency {counting.MaxConcurrent})");
        Assert.Equal(17, counting.Reads);
    }

    [Fact]
    public void SequentialReadsAreReadAheadAndThenHit()
    {
        var counting = new CountingSource(new SlowSource(new PatternSource(64 * Block, seed: 5)));
        using var cache = new CacheFilter(counting, capacityBytes: 64 * Block, readaheadBytes: 8 * Block);
        var expected = CacheFilterTests.Expected(cache.Length, seed: 5);
        var buffer = new byte[Block];
        for (int b = 0; b < 64; b++)
        {
            cache.Read(b * (long)Block, buffer);
            Assert.True(expected.AsSpan(b * Block, Block).SequenceEqual(buffer), $"block {b} differs");
            if (b == 1)
            {
                // The second request of a stream schedules the window after it; pool threads load it unasked.
                CacheFilterTests.WaitUntil(() => cache.Statistics.ReadaheadLoads >= 1, "the first readahead load");
            }

            Thread.Sleep(2); // a consumer doing something with the data, as a guest does
        }

        var s = cache.Statistics;
        Assert.True(s.ReadaheadLoads >= 32, $"only {s.ReadaheadLoads} readahead loads");
        Assert.True(s.Hits + s.CoalescedWaits >= 48, $"hits {s.Hits}, waits {s.CoalescedWaits}: the stream did not profit from readahead");
        Assert.Equal(64, counting.Reads); // every block loaded exactly once, whoever loaded it
    }
}

/// <summary>The first read waits (at most 10 s) until a second read has started beside it.</summary>
internal sealed class CompanionGateSource(IBlockSource next) : BlockFilter(next)
{
    private readonly ManualResetEventSlim _companion = new();
    private int _started;

    public bool CompanionSeen { get; private set; }

    public override void Read(long offset, Span<byte> buffer)
    {
        if (Interlocked.Increment(ref _started) == 1)
        {
            CompanionSeen = _companion.Wait(TimeSpan.FromSeconds(10));
        }
        else
        {
            _companion.Set();
        }

        base.Read(offset, buffer);
    }
}
