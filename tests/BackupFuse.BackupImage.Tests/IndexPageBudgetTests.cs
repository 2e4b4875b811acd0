using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Testing;
using Xunit;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// Parsed index pages count against the mount's cache budget (issue 10, item 12): however many images are open, their
/// pages together stay within it, a page can push out cached blocks of a plugin (and the reverse), and closing an
/// image gives its pages' bytes back.
/// </summary>
[Collection("process cache budget")]
public sealed class IndexPageBudgetTests
{
    private const int EntriesPerPage = 1024;

    [Fact]
    public void PagesOfManyImagesStayWithinTheBudget()
    {
        long page = IndexPageCache.BytesOf(new ChunkEntry[EntriesPerPage]);
        var budget = new CacheBudget(3 * page);
        var caches = Enumerable.Range(0, 4).Select(_ => new IndexPageCache(64, budget)).ToArray();
        for (uint p = 0; p < 10; p++)
        {
            foreach (var cache in caches)
            {
                var entries = cache.GetOrLoad(p, Load);
                Assert.Equal(p, (uint)entries[0].PayloadOffset);
                Assert.True(budget.HeldBytes <= budget.CapacityBytes, $"{budget.HeldBytes} bytes held, budget {budget.CapacityBytes}");
            }
        }

        Assert.Equal(3, caches.Sum(c => c.Count));
        Assert.Equal(budget.HeldBytes, caches.Sum(c => c.BytesHeld));

        foreach (var cache in caches)
        {
            cache.Dispose();
        }

        Assert.Equal(0, budget.HeldBytes);
        Assert.Equal(0, budget.MemberCount);
    }

    [Fact]
    public void PagesAndCachedBlocksShareOneBudget()
    {
        const int Block = 65536;
        long page = IndexPageCache.BytesOf(new ChunkEntry[EntriesPerPage]);
        var budget = new CacheBudget(4 * Block);
        using var blocks = new CacheFilter(new PatternSource(16 * Block, seed: 5), budget, readaheadBytes: 0);
        var buffer = new byte[4096];
        for (int i = 0; i < 4; i++)
        {
            blocks.Read(i * (long)Block, buffer);
        }

        Assert.Equal(4 * Block, budget.HeldBytes);
        using var pages = new IndexPageCache(64, budget);
        pages.GetOrLoad(0, Load);
        pages.GetOrLoad(1, Load);

        // The two pages pushed out the least recently used blocks; the total stays within the budget.
        Assert.Equal(2, pages.Count);
        Assert.True(blocks.Statistics.BytesCached <= (4 * Block) - (2 * page), $"{blocks.Statistics.BytesCached} bytes of blocks beside 2 pages");
        Assert.True(budget.HeldBytes <= budget.CapacityBytes);

        // And the reverse: blocks read now push out the (older) pages.
        for (int i = 4; i < 8; i++)
        {
            blocks.Read(i * (long)Block, buffer);
        }

        Assert.Equal(0, pages.Count);
        Assert.Equal(4 * Block, blocks.Statistics.BytesCached);
    }

    [Fact]
    public void AnImageGivesItsPagesBackWhenClosed()
    {
        using var dir = new TempDirectory("bfidx");
        var raw = new byte[8 << 20];
        new Random(3).NextBytes(raw.AsSpan(0, 1 << 20));
        File.WriteAllBytes(dir["disk.raw"], raw);
        BackupFuse.BackupImage.Writing.BackupWriter.Backup(dir["disk.raw"], dir["disk.bfi"], new BackupFuse.BackupImage.Writing.BackupOptions { ChunkSize = 4096, EntriesPerPage = 64 });
        long before = CacheBudget.Process.HeldBytes;
        using (var image = BackupImageFile.Open(dir["disk.bfi"]))
        {
            for (long chunk = 0; chunk < image.ChunkCount; chunk += 64)
            {
                image.GetEntry(chunk);
            }

            Assert.True(CacheBudget.Process.HeldBytes > before, "the image's pages are not counted in the process budget");
        }

        Assert.True(CacheBudget.Process.HeldBytes <= before, "closing the image kept its pages' bytes in the budget");
    }

    private static ChunkEntry[] Load(uint page)
    {
        var entries = new ChunkEntry[EntriesPerPage];
        entries[0] = new ChunkEntry(ChunkKind.Data, ChunkFlags.None, page, 1, 0, default);
        return entries;
    }
}

/// <summary>Tests that watch the process-wide budget run alone (other tests open images, which use it too).</summary>
[CollectionDefinition("process cache budget", DisableParallelization = true)]
public sealed class ProcessBudgetCollection;
