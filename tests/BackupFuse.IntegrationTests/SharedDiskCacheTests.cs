using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// SharedDiskCaches (issue 17, many readers): stacks of plugins that read as the same disk share one block cache, so
/// the second reader of a block finds it decompressed; the bytes are those of a stack with a cache of its own; the
/// shared point and cache live until the last stack closes; another disk gets its own cache.
/// </summary>
[Collection("process cache budget")] // the hit/miss assertions need the process budget to themselves
public sealed class SharedDiskCacheTests : IDisposable
{
    private const long DiskSize = 8L << 20;
    private readonly TempDirectory _dir = new("bfshared");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void StacksOfTheSameDiskShareOneCache_UntilTheLastCloses()
    {
        string image = Backup("a", seed: 3);
        var caches = new SharedDiskCaches();
        var first = Open(image, caches);
        using var second = Open(image, caches);
        Assert.Equal(1, caches.Count);
        Assert.Same(first.Point, second.Point);

        byte[] expected;
        using (var own = Open(image, null))
        {
            expected = ReadAll(own.ServedFile);
        }

        Assert.Equal(expected, ReadAll(first.ServedFile));
        var lease = Assert.IsType<SharedDiskCaches.Lease>(second.Disk);
        long missesAfterFirst = lease.Statistics.Misses;
        long hitsAfterFirst = lease.Statistics.Hits;
        Assert.True(missesAfterFirst > 0, "the first reader should have loaded blocks");

        // The second reader finds every block the first one loaded: no new loads, only hits.
        Assert.Equal(expected, ReadAll(second.ServedFile));
        Assert.Equal(missesAfterFirst, lease.Statistics.Misses);
        Assert.True(lease.Statistics.Hits > hitsAfterFirst, $"{lease.Statistics.Hits} hits after the second read, {hitsAfterFirst} before");

        // The first stack closes: the second still reads through the shared point and cache.
        first.Dispose();
        Assert.Equal(1, caches.Count);
        Assert.Equal(expected, ReadAll(second.ServedFile));

        // Another disk: a cache of its own.
        using (var other = Open(Backup("b", seed: 4), caches))
        {
            Assert.Equal(2, caches.Count);
            Assert.NotSame(second.Point, other.Point);
        }

        Assert.Equal(1, caches.Count);
        second.Dispose();
        Assert.Equal(0, caches.Count);
        Assert.Throws<ObjectDisposedException>(() => lease.Read(0, new byte[512]));
    }

    [Fact]
    public void ACopyOfAnImageWithTheSameIdentityGetsACacheOfItsOwn_AHardLinkSharesIt()
    {
        // A copy has the same image ids, so the same disk identity: exactly what a crafted image naming another's ids
        // would have. Only the opened file's identity (device, inode, size, mtime) tells them apart.
        string image = Backup("a", seed: 3);
        string copy = _dir["copy.bfi"];
        File.Copy(image, copy);
        string link = _dir["link.bfi"];
        ExternalTool.Check("ln", image, link);

        var caches = new SharedDiskCaches();
        using var original = Open(image, caches);
        using var copied = Open(copy, caches);
        Assert.Equal(original.Point.Identity, copied.Point.Identity);
        Assert.Equal(2, caches.Count);
        Assert.NotSame(original.Point, copied.Point);

        using var linked = Open(link, caches);
        Assert.Equal(2, caches.Count);
        Assert.Same(original.Point, linked.Point);
        Assert.Equal(ReadAll(original.ServedFile), ReadAll(copied.ServedFile));
    }

    private string Backup(string name, int seed)
    {
        string disk = _dir[name + ".raw"];
        TestDisks.CreateMixed(disk, DiskSize, seed);
        string image = _dir[name + ".bfi"];
        Cli.Ok("backup", disk, image);
        return image;
    }

    private static BackupPointStack Open(string image, SharedDiskCaches? caches)
    {
        var chain = BackupChain.Open(image);
        var plugin = new PluginFile(1, chain.Top.Path, chain.Top.Id);
        return BackupPointStack.Open(BackupPointDisk.Create([chain], plugin), plugin, changes: null, create: false, sharedCaches: caches);
    }

    // Requests of 12 KiB never hold a whole cache block, so every block goes through the cache whatever the filter's
    // cost vote says: where loads measure as cheap, whole blocks of a large request are read around the cache (and
    // count as misses), which made the hit/miss assertions depend on how fast zstd ran on a given machine.
    private const int Request = 12 << 10;

    private static byte[] ReadAll(IBlockSource source)
    {
        var bytes = new byte[source.Length];
        for (long offset = 0; offset < bytes.Length; offset += Request)
        {
            int n = (int)Math.Min(Request, bytes.Length - offset);
            source.Read(offset, bytes.AsSpan((int)offset, n));
        }

        return bytes;
    }
}

/// <summary>Tests that count hits and misses of caches drawing on the process-wide budget run alone.</summary>
[CollectionDefinition("process cache budget", DisableParallelization = true)]
public sealed class ProcessCacheBudgetCollection;
