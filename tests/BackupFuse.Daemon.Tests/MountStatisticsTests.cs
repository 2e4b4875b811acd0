using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Storage.Caching;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MountStatisticsTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfstats");

    public void Dispose() => _dir.Dispose();

    private string StatsDir => _dir["run"];

    [Fact]
    public void TheDaemonsFiguresReachStatusThroughTheFile()
    {
        // A real image read through a real cache: the figures status shows are the cache's own.
        string disk = _dir["disk.raw"];
        var data = new byte[3 << 20];
        new Random(5).NextBytes(data);
        File.WriteAllBytes(disk, data);
        BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions());
        using var cache = ImageCache.Open(_dir["cache"], new ImageCacheOptions { CapacityBytes = 64L << 20 });
        using (var o = cache.Wrap(LocalImageObject.Open(_dir["full.bfi"])))
        {
            var buffer = new byte[o.Length];
            o.ReadExactly(0, buffer);
            o.ReadExactly(0, buffer);
        }

        string mountPoint = _dir["vms"];
        using (MountStatistics.Start(mountPoint, cache, TimeSpan.FromHours(1), StatsDir))
        {
        }

        string file = Path.Combine(StatsDir, MountStatistics.FileNameFor(mountPoint));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(file));
        var snapshot = MountStatistics.TryRead(mountPoint, [StatsDir]);
        Assert.NotNull(snapshot);
        Assert.Equal(Environment.ProcessId, snapshot.ProcessId);
        var expected = cache.Statistics;
        Assert.Equal(expected.BytesFetched, snapshot.RemoteCache!.Value.BytesFetched);
        Assert.Equal(expected.Hits, snapshot.RemoteCache.Value.Hits);
        Assert.True(expected.Hits > 0 && expected.Misses > 0);

        var lines = MountStatistics.Describe(snapshot).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Contains($"hit rate {expected.HitRate * 100:0.0}%", lines[0], StringComparison.Ordinal);
        Assert.Contains("fetched ", lines[0], StringComparison.Ordinal);
        Assert.Contains(cache.Directory, lines[0], StringComparison.Ordinal);
        Assert.StartsWith("  memory cache: ", lines[1], StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(StatsDir, ".*")); // no temporary file left
    }

    [Fact]
    public void TheFileIsRewrittenPeriodicallyAndAStaleOneIsIgnored()
    {
        string mountPoint = _dir["vms"];
        using (MountStatistics.Start(mountPoint, (ImageCache?)null, TimeSpan.FromMilliseconds(50), StatsDir))
        {
            string file = Path.Combine(StatsDir, MountStatistics.FileNameFor(mountPoint));
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.Exists(file) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(10);
            }

            var first = MountStatistics.TryRead(mountPoint, [StatsDir])!;

            // Rewritten every 50 ms; a busy machine may delay a rewrite, so wait for one (up to 10 s), never a fixed time.
            var later = first;
            while (later.UpdatedUtc <= first.UpdatedUtc && DateTime.UtcNow < deadline.AddSeconds(10))
            {
                Thread.Sleep(20);
                later = MountStatistics.TryRead(mountPoint, [StatsDir]) ?? later;
            }

            Assert.True(later.UpdatedUtc > first.UpdatedUtc);
            Assert.Null(later.RemoteCache);
            Assert.Single(MountStatistics.Describe(later)); // memory cache only
        }

        // The figures of a daemon that is gone are not shown.
        string name = MountStatistics.FileNameFor(mountPoint);
        string text = File.ReadAllText(Path.Combine(StatsDir, name));
        File.WriteAllText(Path.Combine(StatsDir, name), text.Replace($"\"ProcessId\": {Environment.ProcessId}", "\"ProcessId\": 2147483600", StringComparison.Ordinal));
        Assert.Null(MountStatistics.TryRead(mountPoint, [StatsDir]));
        Assert.Null(MountStatistics.TryRead(_dir["elsewhere"], [StatsDir]));
    }

    [Fact]
    public void PlantedSymlinksAreNeverFollowed()
    {
        string mountPoint = _dir["vms"];
        string victim = _dir["victim"];
        File.WriteAllText(victim, "precious");
        Directory.CreateDirectory(StatsDir);
        File.CreateSymbolicLink(Path.Combine(StatsDir, MountStatistics.FileNameFor(mountPoint)), victim);
        using (MountStatistics.Start(mountPoint, (ImageCache?)null, TimeSpan.FromHours(1), StatsDir))
        {
        }

        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.NotNull(MountStatistics.TryRead(mountPoint, [StatsDir])); // the link itself was replaced

        // The statistics directory itself a symlink: nothing is written through it.
        string victimDir = _dir["victim-dir"];
        Directory.CreateDirectory(victimDir);
        string linked = _dir["linked-run"];
        Directory.CreateSymbolicLink(linked, victimDir);
        using (MountStatistics.Start(mountPoint, (ImageCache?)null, TimeSpan.FromHours(1), linked))
        {
        }

        Assert.Empty(Directory.GetFileSystemEntries(victimDir));
    }

    [Theory]
    [InlineData("/srv/vms", "srv-vms.json")]
    [InlineData("/", "-.json")]
    [InlineData("/mnt/a b", "mnt-a_20b.json")]
    public void FileNamesComeFromTheMountPoint(string mountPoint, string expected) =>
        Assert.Equal(expected, MountStatistics.FileNameFor(mountPoint));

    [Fact]
    public void TheMemoryCacheLineShowsTheHitRateOfAllPlugins()
    {
        var snapshot = new MountStatisticsSnapshot
        {
            MountPoint = "/vms",
            ProcessId = 1,
            UpdatedUtc = DateTime.UtcNow,
            MemoryCacheHits = 5,
            MemoryCacheWaits = 1,
            MemoryCacheMisses = 2,
            MemoryCacheHeldBytes = 3 << 20,
            MemoryCacheCapacityBytes = 256 << 20,
        };
        string line = Assert.Single(MountStatistics.Describe(snapshot));
        Assert.Contains("memory cache: hit rate 75.0% (5 hits, 1 waits for another reader's load, 2 misses)", line, StringComparison.Ordinal);
        Assert.Contains("hit rate n/a (0 hits", Assert.Single(MountStatistics.Describe(snapshot with { MemoryCacheHits = 0, MemoryCacheWaits = 0, MemoryCacheMisses = 0 })), StringComparison.Ordinal);
    }
}
