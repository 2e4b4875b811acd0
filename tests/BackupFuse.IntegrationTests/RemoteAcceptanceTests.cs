using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 12's acceptance with s3rver on loopback and <see cref="FaultProxy"/> between the daemon and the store: a full
/// and an incremental backup in S3 read back identical (qemu-img compare, both points) through 20 ms per request,
/// through 503 Slow Down answers and connection resets, from an empty cache dir ("a second host"), and from the same
/// cache dir again (warm: the store is asked for almost nothing), also when a cache entry was damaged on disk; and
/// `backupfuse status` shows the remote cache's figures while the mount runs. Every step runs under a timeout.
/// (The outage -> EIO -> recovery case is RemoteS3Tests.Reads_during_an_outage_...)
/// </summary>
[Collection("mounts")]
public sealed partial class RemoteAcceptanceTests : IClassFixture<S3rverFixture>
{
    private const long DiskSize = 32L << 20;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);
    private readonly S3rverFixture _s3;
    private readonly ITestOutputHelper _output;

    public RemoteAcceptanceTests(S3rverFixture s3, ITestOutputHelper output)
    {
        _s3 = s3;
        _output = output;
    }

    private TempDirectory Dir => _s3.Dir;

    [SkippableFact]
    public void A_chain_in_S3_reads_identical_through_20_ms_per_request_with_an_empty_cache_dir()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var chain = Chain("a1");
        using var proxy = new FaultProxy("127.0.0.1", _s3.Port) { Delay = TimeSpan.FromMilliseconds(20) };
        using var daemon = Mount(chain, proxy, EmptyDir("a1-cache"));
        CompareBoth(chain);
        Assert.True(proxy.Forwarded > 0, "nothing went through the proxy");
        daemon.Stop();
        Assert.DoesNotContain("error", daemon.Log, StringComparison.OrdinalIgnoreCase);
    }

    [SkippableFact]
    public void A_chain_in_S3_reads_identical_through_503_Slow_Down_answers_and_connection_resets()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var chain = Chain("a2");
        using var proxy = new FaultProxy("127.0.0.1", _s3.Port);
        using var daemon = Mount(chain, proxy, EmptyDir("a2-cache"));

        // Faults in batches while the disks are read: the next 5 requests answered 503 Slow Down; once those were
        // sent and 4 requests went through, the next 2 requests' connections reset; then 503s again, and so on.
        using var stop = new CancellationTokenSource();
        int batches = 0;
        var injector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                bool slowDown = batches % 2 == 0;
                long target = slowDown ? proxy.Answered503 + 5 : proxy.Resets + 2;
                if (slowDown)
                {
                    proxy.FailNext(5);
                }
                else
                {
                    proxy.ResetNext(2);
                }

                batches++;
                while (!stop.IsCancellationRequested && (slowDown ? proxy.Answered503 : proxy.Resets) < target)
                {
                    Thread.Sleep(5);
                }

                // Then let a few requests through (a share of the requests fails, not all of them: that would be an
                // outage, which RemoteS3Tests covers).
                long through = proxy.Forwarded + 4;
                while (!stop.IsCancellationRequested && proxy.Forwarded < through)
                {
                    Thread.Sleep(5);
                }
            }
        });
        try
        {
            CompareBoth(chain);
        }
        finally
        {
            stop.Cancel();
            injector.Wait(TimeSpan.FromSeconds(5));
            proxy.FailNext(0);
            proxy.ResetNext(0);
        }

        // The faults reached the daemon (the reads needed retries), and it absorbed them: identical bytes, no EIO.
        Assert.True(proxy.Answered503 >= 5, $"only {proxy.Answered503} 503 answers were sent ({proxy.Requests} requests)");
        Assert.True(proxy.Resets >= 2, $"only {proxy.Resets} connections were reset ({proxy.Requests} requests)");
        Assert.True(batches >= 3, $"only {batches} fault batches were started during the read");
        daemon.Stop();
        Assert.DoesNotContain(": read of ", daemon.Log, StringComparison.Ordinal); // no read failed for good
    }

    [SkippableFact]
    public void A_second_host_reads_both_points_from_an_empty_cache_dir_and_a_remount_with_it_warm_fetches_almost_nothing()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var chain = Chain("a3");
        string cache = EmptyDir("a3-cache");
        long cold;
        using (var proxy = new FaultProxy("127.0.0.1", _s3.Port))
        using (var daemon = Mount(chain, proxy, cache))
        {
            CompareBoth(chain);
            daemon.Stop();
            cold = proxy.BytesToClient;
        }

        long images = ChainBytes(chain.Root + "inc.bfi");
        Assert.True(cold >= images, $"the cold mount fetched {cold} bytes, less than the images' {images}");

        using (var proxy = new FaultProxy("127.0.0.1", _s3.Port))
        using (var daemon = Mount(chain, proxy, cache))
        {
            CompareBoth(chain);
            // The figures are published every 5 s: wait for a snapshot taken after the reads (hundreds of block reads).
            var status = RemoteCacheLine(daemon, line => HitsAndMisses(line).Hits >= 100);
            Assert.Equal(0, HitsAndMisses(status).Misses); // every block came from the cache
            daemon.Stop();
            _output.WriteLine($"images {images} B; cold: {cold} B down; warm: {proxy.BytesToClient} B down in {proxy.Requests} requests; {status}");
            // Each open reads the 512-byte header (and the mount lists the prefix): a few small requests, no data.
            Assert.True(proxy.BytesToClient < images / 50, $"the warm remount fetched {proxy.BytesToClient} bytes in {proxy.Requests} requests (images: {images}, cold: {cold})");
            Assert.True(proxy.Requests < 50, $"the warm remount made {proxy.Requests} requests");
        }
    }

    [SkippableFact]
    public void A_damaged_cache_entry_is_caught_by_the_checksums_and_fetched_again()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var chain = Chain("a4");
        string cache = EmptyDir("a4-cache");
        using (var proxy = new FaultProxy("127.0.0.1", _s3.Port))
        using (var daemon = Mount(chain, proxy, cache))
        {
            CompareBoth(chain);
            daemon.Stop();
        }

        // Flip bytes inside the full image's cached data (the larger data file), in a few blocks well inside it.
        string data = Directory.GetFiles(cache, "*.data", SearchOption.AllDirectories).OrderByDescending(f => new FileInfo(f).Length).First();
        Assert.Matches("^[0-9a-f]{32}-[0-9]+\\.data$", Path.GetFileName(data));
        long length = new FileInfo(data).Length;
        Assert.True(length > 4L << 20, $"{data}: only {length} bytes cached");
        using (var f = new FileStream(data, FileMode.Open, FileAccess.ReadWrite))
        {
            foreach (long at in new[] { length / 4, length / 2, (length * 3) / 4 })
            {
                var bytes = new byte[64];
                f.Position = at;
                f.ReadExactly(bytes);
                for (int i = 0; i < bytes.Length; i++)
                {
                    bytes[i] ^= 0x5a;
                }

                f.Position = at;
                f.Write(bytes);
            }
        }

        using (var proxy = new FaultProxy("127.0.0.1", _s3.Port))
        using (var daemon = Mount(chain, proxy, cache))
        {
            CompareBoth(chain); // the damaged blocks are never served: identical bytes
            string status = RemoteCacheLine(daemon, line => line.Contains("damaged blocks fetched again", StringComparison.Ordinal));
            var damaged = DamagedBlocks().Match(status);
            Assert.True(damaged.Success && int.Parse(damaged.Groups[1].Value, CultureInfo.InvariantCulture) >= 1, status);
            daemon.Stop();
            _output.WriteLine($"after the damage: {proxy.BytesToClient} B down in {proxy.Requests} requests; {status}");
            // The store saw the refetch: at least one cache block's worth (well above the headers of a warm remount).
            Assert.True(proxy.BytesToClient > 256 << 10, $"the remount fetched only {proxy.BytesToClient} bytes: {status}");
        }
    }

    [SkippableFact]
    public void Status_shows_the_remote_cache_hit_rate_and_bytes_fetched_while_a_remote_mount_runs()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var chain = Chain("a5");
        string cache = EmptyDir("a5-cache");
        using var proxy = new FaultProxy("127.0.0.1", _s3.Port);
        using var daemon = Mount(chain, proxy, cache);
        Compare(chain.FullPlugin, chain.P0);
        string line = RemoteCacheLine(daemon, l => !l.Contains("fetched 0 B", StringComparison.Ordinal));
        var m = RemoteCacheFigures().Match(line);
        Assert.True(m.Success, line);
        Assert.InRange(double.Parse(m.Groups["rate"].Value, CultureInfo.InvariantCulture), 0, 100);
        Assert.True(int.Parse(m.Groups["misses"].Value, CultureInfo.InvariantCulture) > 0, line); // a cold cache misses
        Assert.NotEqual("0 B", m.Groups["fetched"].Value);
        Assert.True(int.Parse(m.Groups["requests"].Value, CultureInfo.InvariantCulture) > 0, line);
        Assert.Contains(" in " + Path.GetFullPath(cache), line, StringComparison.Ordinal);
        daemon.Stop();
    }

    [GeneratedRegex(@"remote cache: hit rate (?<rate>[0-9.]+)% \((?<hits>[0-9]+) hits, (?<misses>[0-9]+) misses\), fetched (?<fetched>[0-9.]+ [KMGT]?i?B) in (?<requests>[0-9]+) requests")]
    private static partial Regex RemoteCacheFigures();

    [GeneratedRegex(@"; ([0-9]+) damaged blocks fetched again")]
    private static partial Regex DamagedBlocks();

    [GeneratedRegex(@"""fileSize"":\s*([0-9]+)")]
    private static partial Regex FileSizes();

    private static (int Hits, int Misses) HitsAndMisses(string line)
    {
        var m = RemoteCacheFigures().Match(line);
        Assert.True(m.Success, line);
        return (int.Parse(m.Groups["hits"].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups["misses"].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Polls `backupfuse status` (the daemon publishes its figures every 5 s) until the mount's "remote cache:" line
    /// satisfies <paramref name="until"/>; fails after 12 s with the last output.
    /// </summary>
    private static string RemoteCacheLine(DaemonProcess daemon, Func<string, bool>? until = null)
    {
        var clock = Stopwatch.StartNew();
        string last = string.Empty;
        while (true)
        {
            var r = Cli.Run("status");
            Assert.Equal(0, r.ExitCode);
            last = r.StdOut;
            string? line = MountLines(last, daemon.MountPoint).FirstOrDefault(l => l.StartsWith("  remote cache: ", StringComparison.Ordinal));
            if (line != null && (until == null || until(line)))
            {
                return line;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(12), $"no such remote cache line for {daemon.MountPoint} in `backupfuse status`:\n{last}");
            Thread.Sleep(250);
        }
    }

    /// <summary>The indented lines `status` prints under the mount at <paramref name="mountPoint"/>.</summary>
    private static IEnumerable<string> MountLines(string status, string mountPoint)
    {
        bool inside = false;
        foreach (string line in status.Split('\n'))
        {
            if (!line.StartsWith(' '))
            {
                inside = line.StartsWith(mountPoint + "\t", StringComparison.Ordinal);
            }
            else if (inside)
            {
                yield return line;
            }
        }
    }

    private DaemonProcess Mount(ChainFiles chain, FaultProxy proxy, string cacheDir) =>
        DaemonProcess.StartWithEnv(chain.Vms, _s3.Env, chain.Vms, "--images", chain.Root, "--s3-endpoint", proxy.Url, "--read-only", "--cache-dir", cacheDir);

    private string EmptyDir(string name)
    {
        string path = Dir[name];
        Assert.False(Directory.Exists(path), $"{path} exists already");
        return path; // the daemon creates it: nothing of the images is on this "host" yet
    }

    /// <summary>The total size of the images of the chain whose top is <paramref name="top"/> (info --json's fileSize of each layer).</summary>
    private long ChainBytes(string top)
    {
        var sizes = FileSizes().Matches(_s3.Ok("info", top, "--json").StdOut).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(2, sizes.Count);
        return sizes.Sum();
    }

    private static void CompareBoth(ChainFiles chain)
    {
        Compare(chain.FullPlugin, chain.P0);
        Compare(chain.IncPlugin, chain.P1);
    }

    private static void Compare(string plugin, string raw)
    {
        var clock = Stopwatch.StartNew();
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, raw], StepTimeout);
        Assert.True(compare.ExitCode == 0, $"qemu-img compare {plugin} {raw}: {compare.Output}");
        Assert.True(clock.Elapsed < StepTimeout, $"qemu-img compare took {clock.Elapsed}");
    }

    /// <summary>
    /// Two points of a small disk (p0, and p1 = p0 with scattered changes) backed up into S3 as a full and an
    /// incremental under bkt/NAME/, and a plugin for each in a fresh directory.
    /// </summary>
    private ChainFiles Chain(string name)
    {
        string p0 = Dir[$"{name}-p0.raw"];
        string p1 = Dir[$"{name}-p1.raw"];
        TestDisks.CreateMixed(p0, DiskSize, seed: name.Sum(c => c));
        File.Copy(p0, p1);
        TestDisks.Scatter(p1, count: 20, seed: 7);
        string root = $"s3://bkt/{name}/";
        _s3.Ok("backup", p0, root + "full.bfi");
        _s3.Ok("backup", p1, root + "inc.bfi", "--parent", root + "full.bfi");
        string vms = Directory.CreateDirectory(Dir[$"{name}-vms"]).FullName;
        string full = Path.Combine(vms, "full.vhdx");
        string inc = Path.Combine(vms, "inc.vhdx");
        _s3.Ok("plugin", "create", root + "full.bfi", full, "--images", root);
        _s3.Ok("plugin", "create", root + "inc.bfi", inc, "--images", root);
        return new ChainFiles(p0, p1, root, vms, full, inc);
    }

    private sealed record ChainFiles(string P0, string P1, string Root, string Vms, string FullPlugin, string IncPlugin);
}
