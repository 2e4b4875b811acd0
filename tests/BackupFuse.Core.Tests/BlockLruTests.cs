using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

/// <summary>The LRU list of a block cache, on one thread: order, pins, the life of an entry.</summary>
public sealed class BlockLruTests
{
    [Fact]
    public void EvictsTheLeastRecentlyUsedFirstAndATouchMakesAnEntryNewest()
    {
        var lru = new BlockLru<TestEntry>();
        var entries = AddPublished(lru, 10, 11, 12, 13);
        lru.Touch(entries[0]); // 10 is now the newest: order (old -> new) 11, 12, 13, 10

        Assert.Equal(new long[] { 11, 12, 13, 10 }, EvictAll(lru));
        Assert.Equal(0, lru.Count);
        Assert.All(entries, e => Assert.True(e.Detached && !e.InOrder));
        Assert.False(lru.Contains(10));
    }

    [Fact]
    public void AnEntryBeingFilledIsFoundButNeverEvictedUntilPublished()
    {
        var lru = new BlockLru<TestEntry>();
        var filling = new TestEntry(7);
        lru.Add(filling);

        Assert.True(lru.TryGet(7, out var found));
        Assert.Same(filling, found);
        Assert.False(lru.TryEvictOldest(out _));
        Assert.Equal(long.MaxValue, lru.OldestUse);

        lru.Touch(filling); // not in the order yet: nothing
        Assert.Null(lru.MostRecent);

        lru.Publish(filling);
        Assert.Same(filling, lru.MostRecent);
        Assert.True(lru.TryEvictOldest(out var victim));
        Assert.Same(filling, victim);
    }

    [Fact]
    public void PinnedEntriesAreSkippedAndEvictedOnceUnpinned()
    {
        var lru = new BlockLru<TestEntry>();
        var e = AddPublished(lru, 1, 2, 3);
        lru.Pin(e[0]);
        lru.Pin(e[0]); // two readers

        Assert.True(lru.TryEvictOldest(out var victim));
        Assert.Equal(2, victim.Block);          // 1 is older but pinned
        Assert.False(lru.Unpin(e[0]));          // still pinned by the other reader, and not detached anyway
        Assert.False(lru.Unpin(e[0]));          // unpinned, but still cached: nothing to free
        Assert.Equal(new long[] { 1, 3 }, EvictAll(lru)); // 1 kept its place as the oldest
    }

    [Fact]
    public void EverythingPinnedMeansNoVictim()
    {
        var lru = new BlockLru<TestEntry>();
        foreach (var e in AddPublished(lru, 1, 2, 3))
        {
            lru.Pin(e);
        }

        Assert.False(lru.TryEvictOldest(out _));
        Assert.Equal(3, lru.Count);
    }

    [Theory]
    [InlineData(2, false)] // scans past two pinned entries, the third is pinned too: gives up
    [InlineData(3, true)]  // scans past three and finds the unpinned fourth
    public void EvictionScansPastAtMostTheScanLimitOfPinnedEntries(int scanLimit, bool evicts)
    {
        var lru = new BlockLru<TestEntry>(scanLimit);
        var e = AddPublished(lru, 1, 2, 3, 4);
        lru.Pin(e[0]);
        lru.Pin(e[1]);
        lru.Pin(e[2]);

        Assert.Equal(evicts, lru.TryEvictOldest(out var victim));
        if (evicts)
        {
            Assert.Same(e[3], victim);
        }
    }

    [Fact]
    public void ARemovedPinnedEntryIsFreedByItsLastUnpin()
    {
        var lru = new BlockLru<TestEntry>();
        var e = AddPublished(lru, 1, 2);
        lru.Pin(e[0]);
        lru.Pin(e[0]);
        lru.Remove(e[0]);

        Assert.True(e[0].Detached);
        Assert.False(lru.Contains(1));
        Assert.Same(e[1], lru.LeastRecent);
        Assert.False(lru.Unpin(e[0])); // another pin remains
        Assert.True(lru.Unpin(e[0]));  // the last one: the caller frees the value now
    }

    [Fact]
    public void AFailedFillIsRemovedAndItsLatePublishDoesNothing()
    {
        var lru = new BlockLru<TestEntry>();
        var failed = new TestEntry(5);
        lru.Add(failed);
        lru.Remove(failed);
        lru.Publish(failed);

        Assert.False(failed.InOrder);
        Assert.Equal(0, lru.Count);
        Assert.False(lru.TryEvictOldest(out _));

        var again = new TestEntry(5); // the block can be cached again, by a new entry
        lru.Add(again);
        Assert.Throws<InvalidOperationException>(() => lru.Add(failed));
        Assert.Throws<ArgumentException>(() => lru.Add(new TestEntry(5)));
    }

    [Fact]
    public void RemovingAnOldEntryLeavesTheNewerOneInTheIndex()
    {
        var lru = new BlockLru<TestEntry>();
        var old = new TestEntry(3);
        lru.Add(old);
        lru.Remove(old);
        var current = new TestEntry(3);
        lru.Add(current);

        lru.Remove(old); // a late second removal of the old entry must not drop the new one

        Assert.True(lru.TryGet(3, out var found));
        Assert.Same(current, found);
    }

    [Fact]
    public void OldestUseIsTheStampOfTheLeastRecentlyUsedEntry()
    {
        var lru = new BlockLru<TestEntry>();
        Assert.Equal(long.MaxValue, lru.OldestUse);
        var e = AddPublished(lru, 1, 2);

        Assert.Equal(e[0].LastUse, lru.OldestUse);
        Assert.True(e[0].LastUse <= e[1].LastUse);
        lru.Touch(e[0]);
        Assert.Equal(e[1].LastUse, lru.OldestUse);
        Assert.True(e[0].LastUse >= e[1].LastUse);
    }

    [Fact]
    public void DetachAllEmptiesTheListAndPinnedEntriesAreFreedByTheirLastUnpin()
    {
        var lru = new BlockLru<TestEntry>();
        var e = AddPublished(lru, 1, 2);
        var filling = new TestEntry(3);
        lru.Add(filling);
        lru.Pin(e[1]);
        lru.DetachAll();

        Assert.Equal(0, lru.Count);
        Assert.Empty(lru.Entries);
        Assert.Null(lru.MostRecent);
        Assert.Equal(long.MaxValue, lru.OldestUse);
        Assert.All(new[] { e[0], e[1], filling }, x => Assert.True(x.Detached && !x.InOrder));
        Assert.True(lru.Unpin(e[1]));
        lru.Publish(filling); // the fill finished after the close: stays out
        Assert.Null(lru.MostRecent);
    }

    [Fact]
    public void AgreesWithASimpleModelOverRandomUse()
    {
        // The model: a list, oldest first; an access moves the block to the end; eviction takes the first unpinned.
        var random = new Random(11);
        var lru = new BlockLru<TestEntry>();
        var model = new List<long>();
        var pinned = new HashSet<long>();
        const int Capacity = 8;
        for (int step = 0; step < 5000; step++)
        {
            long block = random.Next(20);
            if (random.Next(10) == 0)
            {
                // Toggle a pin on a cached block.
                if (lru.TryGet(block, out var p))
                {
                    if (pinned.Remove(block))
                    {
                        Assert.False(lru.Unpin(p));
                    }
                    else
                    {
                        lru.Pin(p);
                        pinned.Add(block);
                    }
                }

                continue;
            }

            if (lru.TryGet(block, out var hit))
            {
                lru.Touch(hit);
                model.Remove(block);
                model.Add(block);
            }
            else
            {
                while (model.Count >= Capacity)
                {
                    long? expected = model.Cast<long?>().FirstOrDefault(b => !pinned.Contains(b!.Value));
                    Assert.Equal(expected.HasValue, lru.TryEvictOldest(out var victim));
                    if (!expected.HasValue)
                    {
                        break;
                    }

                    Assert.Equal(expected.Value, victim.Block);
                    model.Remove(expected.Value);
                }

                if (model.Count < Capacity)
                {
                    var added = new TestEntry(block);
                    lru.Add(added);
                    lru.Publish(added);
                    model.Add(block);
                }
            }

            Assert.Equal(model.Count, lru.Count);
            Assert.Equal(model[0], lru.LeastRecent!.Block);
            Assert.Equal(model[^1], lru.MostRecent!.Block);
        }
    }

    private static TestEntry[] AddPublished(BlockLru<TestEntry> lru, params long[] blocks)
    {
        var entries = blocks.Select(b => new TestEntry(b)).ToArray();
        foreach (var e in entries)
        {
            lru.Add(e);
            lru.Publish(e);
        }

        return entries;
    }

    private static List<long> EvictAll(BlockLru<TestEntry> lru)
    {
        var order = new List<long>();
        while (lru.TryEvictOldest(out var victim))
        {
            order.Add(victim.Block);
        }

        return order;
    }

    private sealed class TestEntry(long block) : BlockLruEntry(block);
}
