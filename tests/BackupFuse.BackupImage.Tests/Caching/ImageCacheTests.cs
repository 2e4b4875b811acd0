using System.Diagnostics;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Storage.Caching;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.BackupImage.Tests.Caching;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ImageCacheTests(CachedImageFixture image, ITestOutputHelper output) : IClassFixture<CachedImageFixture>, IDisposable
{
    private const int Block = 1 << 20;
    private readonly TempDirectory _dir = new("bfcache");
    private readonly List<string> _warnings = [];

    public void Dispose() => _dir.Dispose();

    private string CacheDir => _dir["cache"];

    private ImageCacheOptions Options(long capacity = 256L << 20, int readahead = 32 << 20, int maxRequest = 8 << 20) => new()
    {
        CapacityBytes = capacity,
        MaxReadaheadBytes = readahead,
        MaxRequestBytes = maxRequest,
        FlushInterval = TimeSpan.FromHours(1),
        Warning = w =>
        {
            lock (_warnings)
            {
                _warnings.Add(w);
            }

            output.WriteLine("warning: " + w);
        },
    };

    private CountingImageObject Inner() => new(LocalImageObject.Open(image.Image));

    private (IImageObject Cached, CountingImageObject Inner) Wrap(ImageCache cache)
    {
        var inner = Inner();
        return (cache.Wrap(inner), inner);
    }

    private void AssertRange(IImageObject o, long offset, int length)
    {
        var got = new byte[length];
        o.ReadExactly(offset, got);
        if (!got.AsSpan().SequenceEqual(image.ImageBytes.AsSpan((int)offset, length)))
        {
            int at = got.AsSpan().CommonPrefixLength(image.ImageBytes.AsSpan((int)offset, length));
            Assert.Fail($"wrong byte at object offset {offset + at}");
        }
    }

    private void ReadAll(IImageObject o, int step)
    {
        for (long at = 0; at < o.Length; at += step)
        {
            AssertRange(o, at, (int)Math.Min(step, o.Length - at));
        }
    }

    [Fact]
    public void RandomAndSequentialReadsReturnTheObjectsBytes()
    {
        using var cache = ImageCache.Open(CacheDir, Options(capacity: 12L << 20));
        var (o, _) = Wrap(cache);
        using (o)
        {
            var rng = new Random(12);
            long length = o.Length;
            for (int i = 0; i < 400; i++)
            {
                int n = rng.Next(4) switch { 0 => rng.Next(1, 600), 1 => rng.Next(1, 70_000), 2 => rng.Next(1, 3 << 20), _ => 4096 };
                long at = rng.NextInt64(0, length - n + 1);
                AssertRange(o, at, n);
            }

            ReadAll(o, 65536);
            ReadAll(o, 3 << 20);
        }

        Assert.True(cache.Statistics.Evictions > 0, "the small bound should have forced evictions");
    }

    [Fact]
    public void ABackupImageReadThroughTheCacheHasTheDisksContent()
    {
        using var cache = ImageCache.Open(CacheDir, Options());
        var (o, _) = Wrap(cache);
        using var file = BackupImageFile.Open(o);
        using var source = new BackupImageSource(file);
        ImageTestKit.AssertSameContent(image.Disk, source);
        Assert.True(cache.Statistics.BytesFetched >= image.ImageBytes.Length / 2);
    }

    [Fact]
    public void AReopenedCacheServesEverythingWithoutFetching()
    {
        using (var cache = ImageCache.Open(CacheDir, Options()))
        {
            var (o, _) = Wrap(cache);
            using (o)
            {
                ReadAll(o, 1 << 20);
            }
        }

        using (var cache = ImageCache.Open(CacheDir, Options()))
        {
            var (o, inner) = Wrap(cache);
            using (o)
            {
                inner.ResetCounters(); // the header read of Wrap is the one fetch a warm open needs
                using var file = BackupImageFile.Open(o);
                using var source = new BackupImageSource(file);
                ImageTestKit.AssertSameContent(image.Disk, source);
                ReadAll(o, 200_000);
                Assert.Equal(0, inner.Reads);
            }

            var stats = cache.Statistics;
            Assert.Equal(0, stats.Misses);
            Assert.True(stats.Hits > 0);
            Assert.Equal(ImageHeaderSize, stats.BytesFetched);
        }
    }

    private const int ImageHeaderSize = 512;

    [Fact]
    public void TheBoundIsKeptOnDisk()
    {
        long capacity = 8L << 20;
        using (var cache = ImageCache.Open(CacheDir, Options(capacity)))
        {
            var (o, _) = Wrap(cache);
            using (o)
            {
                ReadAll(o, 1 << 20);
                ReadAll(o, 100_000);
                Assert.True(cache.Statistics.StoredBytes <= capacity);
                Assert.True(cache.Statistics.Evictions > 0);
                // Wait for readahead still running, then count what the files hold.
                Thread.Sleep(200);
                long onDisk = AllocatedBytes(CacheDir);
                output.WriteLine($"allocated {onDisk} bytes, stored {cache.Statistics.StoredBytes}");
                Assert.True(onDisk <= capacity + (64 << 10), $"{onDisk} bytes on disk for a bound of {capacity}");
            }
        }

        Assert.True(AllocatedBytes(CacheDir) <= capacity + (64 << 10));
    }

    [Fact]
    public void ASequentialReadNeedsFarFewerInnerReadsThanBlocks()
    {
        using var cache = ImageCache.Open(CacheDir, Options());
        var (o, inner) = Wrap(cache);
        using (o)
        {
            inner.Delay = TimeSpan.FromMilliseconds(20);
            ReadAll(o, 65536);
            long blocks = (o.Length + Block - 1) / Block;
            output.WriteLine($"{inner.Reads} inner reads for {blocks} blocks; {cache.Statistics}");
            Assert.True(inner.Reads <= blocks * 2 / 5, $"{inner.Reads} inner reads for {blocks} blocks"); // header read included
            Assert.True(cache.Statistics.ReadaheadBytes > o.Length / 2);
            Assert.True(cache.Statistics.HitRate > 0.9, $"hit rate {cache.Statistics.HitRate}");
            Assert.True(inner.MaxConcurrent >= 2, "the readahead should fetch ahead in parallel");
        }
    }

    [Fact]
    public void ConcurrentReadersOfOneMissingBlockCauseOneInnerRead()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            inner.Delay = TimeSpan.FromMilliseconds(200);
            Concurrently(8, i => AssertRange(o, (3L * Block) + (i * 70_000), 4096));
            Assert.Equal(1, inner.ReadsOverlapping(3L * Block, Block));
        }
    }

    [Fact]
    public void MissingBlocksOfOneReadAreFetchedInParallelOrCoalesced()
    {
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0, maxRequest: Block)))
        {
            var (o, inner) = Wrap(cache);
            using (o)
            {
                inner.Delay = TimeSpan.FromMilliseconds(300);
                var clock = Stopwatch.StartNew();
                AssertRange(o, 2L * Block, 4 * Block);
                output.WriteLine($"4 blocks, no coalescing: {clock.ElapsedMilliseconds} ms, {inner.MaxConcurrent} at once");
                Assert.Equal(4, inner.MaxConcurrent);
                Assert.True(clock.ElapsedMilliseconds < 1000, $"{clock.ElapsedMilliseconds} ms: not parallel");
            }
        }

        using (var cache = ImageCache.Open(_dir["cache2"], Options(readahead: 0)))
        {
            var (o, inner) = Wrap(cache);
            using (o)
            {
                inner.ResetCounters();
                AssertRange(o, (2L * Block) + 5, 4 * Block); // 5 blocks, adjacent: one inner read
                Assert.Equal(1, inner.Reads);
                Assert.Equal(5L * Block, inner.Bytes);
            }
        }
    }

    [Fact]
    public void ADamagedBlockOnDiskIsFetchedAgainNotServed()
    {
        using (var cache = ImageCache.Open(CacheDir, Options()))
        {
            var (o, _) = Wrap(cache);
            using (o)
            {
                ReadAll(o, 1 << 20);
            }
        }

        string data = Directory.GetFiles(CacheDir, "*.data").Single();
        long where = (5L * Block) + 12345;
        using (var fs = new FileStream(data, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = where;
            int b = fs.ReadByte();
            fs.Position = where;
            fs.WriteByte((byte)(b ^ 0x40));
        }

        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            var (o, inner) = Wrap(cache);
            using (o)
            {
                inner.ResetCounters();
                AssertRange(o, where - 100, 4096);
                Assert.Equal(1, inner.ReadsOverlapping(5L * Block, Block));
                Assert.Equal(1, cache.Statistics.DamagedBlocks);
                AssertRange(o, where - 100, 4096); // now from the cache again
                Assert.Equal(1, inner.Reads);
            }
        }
    }

    [Fact]
    public void RefetchDropsTheCachedCopyAndTheReaderGetsTheRightBytes()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            using var file = BackupImageFile.Open(o);
            // A chunk in a block nothing has read yet (the open prefetches the index pages in the background).
            WaitForQuiet(cache);
            long chunk = Enumerable.Range(0, (int)file.ChunkCount).First(c =>
                file.GetEntry(c) is { Kind: Format.ChunkKind.Data } e && inner.ReadsOverlapping(e.PayloadOffset & ~(Block - 1L), 2L * Block) == 0);
            var entry = file.GetEntry(chunk);
            var want = new byte[file.ChunkLength(chunk)];
            using (var plain = BackupImageFile.Open(image.Image))
            {
                plain.ReadChunk(chunk, want);
            }

            // The store hands out a flipped bit once: the cache stores it (its sector CRCs describe what it got), the
            // chunk CRC catches it, Refetch drops the block, and the second read fetches the right bytes.
            inner.CorruptNext(entry.PayloadOffset + 3);
            var got = new byte[want.Length];
            file.ReadChunk(chunk, got);
            Assert.Equal(want, got);
            Assert.Equal(2, inner.ReadsOverlapping(entry.PayloadOffset, entry.StoredLength));
            Assert.True(cache.Statistics.DamagedBlocks >= 1);

            Assert.True(o.Refetch(entry.PayloadOffset, entry.StoredLength));
            file.ReadChunk(chunk, got);
            Assert.Equal(want, got);
            Assert.Equal(3, inner.ReadsOverlapping(entry.PayloadOffset, entry.StoredLength));
        }
    }

    [Fact]
    public void OpeningAnImagePrefetchesTheBlocksOfItsIndexPagesOnly()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using var file = BackupImageFile.Open(o);
        WaitForQuiet(cache);

        // Index pages are interleaved with the payloads (docs/format.md): the open hints at each page, not at the
        // whole span from the first page to the directory (which is nearly the whole image).
        var pageBlocks = file.IndexDirectory.SelectMany(d => new[] { d.Offset / Block, (d.Offset + d.StoredLength - 1) / Block }).ToHashSet();
        long total = (o.Length + Block - 1) / Block;
        output.WriteLine($"{pageBlocks.Count} of {total} blocks hold index pages; prefetched {cache.Statistics.ReadaheadBytes} bytes");
        Assert.True(pageBlocks.Count <= total * 2 / 3, "the test image should have blocks without index pages");
        Assert.True(cache.Statistics.ReadaheadBytes > 0);
        Assert.True(cache.Statistics.ReadaheadBytes <= pageBlocks.Count * (long)Block);
        for (long b = 0; b < total; b++)
        {
            if (!pageBlocks.Contains(b) && b != 0 && b != (o.Length - 1) / Block) // the open reads the header and the end
            {
                Assert.Equal(0, inner.ReadsOverlapping(b * Block, Block));
            }
        }
    }

    [SkippableFact]
    public void AFullCacheDiskOnlyMeansBytesAreServedWithoutBeingKept()
    {
        Prerequisite.SkipIf(Environment.UserName != "root" ? "mounting a small tmpfs needs root" : null);
        string small = _dir["small"];
        Directory.CreateDirectory(small);
        var mount = ExternalTool.Run("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", small], TimeSpan.FromSeconds(30));
        Assert.True(mount.ExitCode == 0, mount.StdErr);
        try
        {
            using (var cache = ImageCache.Open(Path.Combine(small, "cache"), Options(capacity: 16L << 20, readahead: 0)))
            {
                var (o, _) = Wrap(cache);
                using (o)
                {
                    ReadAll(o, 1 << 20); // 19 MiB through a 3 MiB file system
                    ReadAll(o, 1 << 20);
                }

                Assert.Contains(_warnings, w => w.Contains("cannot write to the cache", StringComparison.Ordinal));
                Assert.True(cache.Statistics.StoredBytes <= 3L << 20);
            }
        }
        finally
        {
            ExternalTool.Run("umount", ["-l", small], TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public void PrefetchHintsShareOneBudgetAndABlockIsFetchedOnce()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0) with { MaxPrefetchBytes = 4L * Block });
        var (o, inner) = Wrap(cache);
        using (o)
        {
            for (long b = 1; b < 15; b++)
            {
                o.Prefetch((b * Block) + 100, 5000);
                o.Prefetch((b * Block) + 9000, 5000); // a second hint in the same block
            }

            WaitForQuiet(cache);
            Assert.Equal(4L * Block, cache.Statistics.ReadaheadBytes);
            for (long b = 1; b < 5; b++)
            {
                Assert.Equal(1, inner.ReadsOverlapping(b * Block, Block));
            }
        }
    }

    [Fact]
    public void ManyThreadsReadingThroughASmallCacheAlwaysGetTheRightBytes()
    {
        using var cache = ImageCache.Open(CacheDir, Options(capacity: 5L * Block, readahead: 4 * Block, maxRequest: 2 * Block));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            inner.Delay = TimeSpan.FromMilliseconds(1);
            Concurrently(8, t =>
            {
                var rng = new Random(t);
                long at = rng.NextInt64(0, o.Length);
                for (int i = 0; i < 150; i++)
                {
                    int n = rng.Next(1, 300_000);
                    at = rng.Next(3) == 0 ? rng.NextInt64(0, o.Length) : at; // mostly sequential streams
                    at = Math.Min(at, o.Length - n);
                    AssertRange(o, at, n);
                    at += n;
                }
            });
            Assert.True(cache.Statistics.Evictions > 0);
            Assert.True(cache.Statistics.StoredBytes <= 5L * Block);
        }
    }

    [Fact]
    public void ALockedCacheDirectoryGivesAPrivateTemporaryCache()
    {
        using var owner = ImageCache.Open(CacheDir, Options());
        Assert.False(owner.IsPrivate);
        string privateDir;
        using (var second = ImageCache.Open(CacheDir, Options()))
        {
            Assert.True(second.IsPrivate);
            privateDir = second.Directory;
            Assert.NotEqual(Path.GetFullPath(CacheDir), privateDir);
            Assert.Contains(_warnings, w => w.Contains("in use by another process", StringComparison.Ordinal));
            var (o, _) = Wrap(second);
            using (o)
            {
                AssertRange(o, 1000, 3 << 20);
            }
        }

        Assert.False(Directory.Exists(privateDir));
    }

    [SkippableFact]
    public void ACacheDirectoryLockedByAnotherProcessGivesAPrivateCache()
    {
        Prerequisite.Tool("flock", "util-linux");
        using (ImageCache.Open(CacheDir, Options()))
        {
        }

        using var holder = Process.Start(new ProcessStartInfo("flock", ["-w", "20", Path.Combine(CacheDir, "lock"), "sleep", "30"]) { UseShellExecute = false })!;
        try
        {
            var deadline = Stopwatch.StartNew();
            ImageCache? cache = null;
            while (deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                cache = ImageCache.Open(CacheDir, Options());
                if (cache.IsPrivate)
                {
                    break;
                }

                cache.Dispose(); // flock(1) has not taken the lock yet
                cache = null;
                Thread.Sleep(50);
            }

            Assert.NotNull(cache);
            using (cache)
            {
                Assert.True(cache.IsPrivate);
            }
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
    }

    [Fact]
    public void AFailingStoreFailsTheReadAndARecoveredOneServesIt()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            inner.Failing = true;
            var e = Assert.Throws<IOException>(() => AssertRange(o, 7L * Block, 1000));
            Assert.Contains(image.Image, e.Message, StringComparison.Ordinal);
            Assert.Throws<IOException>(() => AssertRange(o, 7L * Block, 1000));
            Assert.Equal(0, cache.Statistics.StoredBytes);
            inner.Failing = false;
            AssertRange(o, 7L * Block, 1000);
            Assert.True(cache.Statistics.StoredBytes > 0);
        }
    }

    [Fact]
    public void WaitersOfAFailingFetchFailToo()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            inner.Failing = true;
            inner.Delay = TimeSpan.FromMilliseconds(200);
            Concurrently(4, i => Assert.Throws<IOException>(() => AssertRange(o, (9L * Block) + (i * 5000), 100)));
            Assert.Equal(1, inner.ReadsOverlapping(9L * Block, Block));
        }
    }

    [Fact]
    public void PrefetchFetchesInTheBackground()
    {
        using var cache = ImageCache.Open(CacheDir, Options(readahead: 0));
        var (o, inner) = Wrap(cache);
        using (o)
        {
            o.Prefetch(10L * Block, 3 * Block);
            var deadline = Stopwatch.StartNew();
            while (cache.Statistics.StoredBytes < 3 * Block && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(10);
            }

            Assert.Equal(3L * Block, cache.Statistics.StoredBytes);
            Assert.Equal(3L * Block, cache.Statistics.ReadaheadBytes);
            inner.ResetCounters();
            AssertRange(o, 10L * Block, 3 * Block);
            Assert.Equal(0, inner.Reads);
        }
    }

    [Fact]
    public void DataWrittenButNeverListedIsPunchedAtOpenAndAnUnusableIndexStartsEmpty()
    {
        string data;
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            var (o, _) = Wrap(cache);
            using (o)
            {
                AssertRange(o, 0, 100);
            }
        }

        data = Directory.GetFiles(CacheDir, "*.data").Single();
        // As if a crash came after a block's bytes were written but before the index listed it.
        using (var fs = new FileStream(data, FileMode.Open, FileAccess.Write))
        {
            fs.Position = 6L * Block;
            fs.Write(image.ImageBytes.AsSpan((int)(6L * Block), Block));
        }

        long before = AllocatedBytes(CacheDir);
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            Assert.True(AllocatedBytes(CacheDir) <= before - Block, "the unlisted block was not punched out");
            var (o, inner) = Wrap(cache);
            using (o)
            {
                inner.ResetCounters();
                AssertRange(o, 6L * Block, 100);
                Assert.Equal(1, inner.Reads);
                AssertRange(o, 0, 100);
                Assert.Equal(1, inner.Reads);
            }
        }

        File.WriteAllBytes(Path.Combine(CacheDir, "index"), [1, 2, 3]);
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            Assert.Contains(_warnings, w => w.Contains("cache index unusable", StringComparison.Ordinal));
            Assert.Empty(Directory.GetFiles(CacheDir, "*.data"));
            Assert.Equal(0, cache.Statistics.StoredBytes);
        }
    }

    [Fact]
    public void FilesArePrivateAndPlantedSymlinksAreNotFollowed()
    {
        using (var cache = ImageCache.Open(CacheDir, Options()))
        {
            var (o, _) = Wrap(cache);
            using (o)
            {
                AssertRange(o, 0, 100);
            }
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(CacheDir));
        foreach (string f in Directory.GetFiles(CacheDir))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f));
        }

        // A planted symlink in place of the data file: refused, the victim is untouched.
        string data = Directory.GetFiles(CacheDir, "*.data").Single();
        string victim = _dir["victim"];
        File.WriteAllText(victim, "precious");
        File.Delete(data);
        File.CreateSymbolicLink(data, victim);
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            // Found at open: the link is removed (not its target) and its entries are forgotten.
            Assert.Contains(_warnings, w => w.Contains("symbolic link", StringComparison.Ordinal));
            Assert.False(File.Exists(data));
            Assert.Equal(0, cache.Statistics.StoredBytes);

            // Planted while the cache runs: reads are served without the cache, the target is never written.
            File.CreateSymbolicLink(data, victim);
            var (o, inner) = Wrap(cache);
            using (o)
            {
                AssertRange(o, 5L * Block, 100);
                AssertRange(o, 5L * Block, 100);
                Assert.Equal(2, inner.ReadsOverlapping(5L * Block, Block));
            }
        }

        Assert.Equal("precious", File.ReadAllText(victim));

        // A symlink planted as the index: removed (not its target), the cache starts empty.
        File.Delete(Path.Combine(CacheDir, "index"));
        File.CreateSymbolicLink(Path.Combine(CacheDir, "index"), victim);
        using (var cache = ImageCache.Open(CacheDir, Options(readahead: 0)))
        {
            Assert.Equal(0, cache.Statistics.StoredBytes);
        }

        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.False(new FileInfo(Path.Combine(CacheDir, "index")).LinkTarget != null);

        // A symlink as the cache directory itself.
        string linkDir = _dir["linked-cache"];
        Directory.CreateSymbolicLink(linkDir, _dir.Path);
        var refused = Assert.Throws<IOException>(() => ImageCache.Open(linkDir, Options()));
        Assert.Contains("not a real directory", refused.Message, StringComparison.Ordinal);
    }

    // Waits until background fetches have stopped storing blocks.
    private static void WaitForQuiet(ImageCache cache)
    {
        long last = -1;
        while (cache.Statistics.BytesFetched != last)
        {
            last = cache.Statistics.BytesFetched;
            Thread.Sleep(100);
        }
    }

    // Runs `action` on `count` threads released together; rethrows the first failure.
    private static void Concurrently(int count, Action<int> action)
    {
        using var start = new Barrier(count);
        Exception? failure = null;
        var threads = Enumerable.Range(0, count).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            try
            {
                action(i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (failure != null)
        {
            throw new AggregateException(failure);
        }
    }

    private static long AllocatedBytes(string directory)
    {
        var psi = new ProcessStartInfo("du", ["-s", "-B1", directory]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var du = Process.Start(psi)!;
        string text = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        return long.Parse(text.Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}
