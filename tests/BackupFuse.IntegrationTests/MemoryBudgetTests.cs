using System.Diagnostics;
using System.Globalization;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 10, item 12 through a real daemon: with <c>--cache-size 64M</c> the daemon's peak resident set (VmHWM) stays
/// within the budget plus a fixed overhead while 4 readers read 4 plugins of one chain over and over and 2 writers
/// write 2 others with qemu-io; after every file is closed the resident set falls back within a few seconds. Every
/// reader's disk is a full copy of the data, so a per-plugin cache (the old behaviour: 256 MiB each) holds
/// 4 x 192 MiB and fails the peak bound by far.
/// </summary>
[Collection("mounts")]
public sealed class MemoryBudgetTests : IDisposable
{
    private const long DiskSize = 192L << 20;
    private const long CacheMiB = 64;

    /// <summary>
    /// What the daemon needs besides its cache, measured on the 2-core build machine: about 40 MiB once mounted
    /// (runtime, code); under this load (about 10 GiB read in 20 s, a dozen opens and closes a second) peaks of
    /// 262-293 MiB in all, so 200-230 MiB beside the budget: JIT-compiled code and thread stacks (~40 MiB), libfuse's
    /// 1 MiB request buffers (~20 MiB), about 40 MiB of live non-cache managed objects (the large object heap) and the
    /// garbage between two collections (the watchdog lets the heap reach budget + 48 MiB). Before the shared budget
    /// (a 256 MiB cache per plugin) the same test peaked at 531 MiB and stayed at 388 MiB after the last close.
    /// </summary>
    private const long OverheadMiB = 288;

    /// <summary>Bound on the resident set after everything closed (measured: 121-126 MiB; at mount: about 40 MiB).</summary>
    private const long AfterCloseMiB = 160;

    private static readonly TimeSpan LoadTime = TimeSpan.FromSeconds(20);

    private readonly TempDirectory _dir = new("bfmem");
    private readonly string _images;
    private readonly string _vms;

    public MemoryBudgetTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        TestDisks.CreateMixed(_dir["disk.raw"], DiskSize, seed: 12);
        Cli.Ok("backup", _dir["disk.raw"], Path.Combine(_images, "disk.bfi"));
        for (int i = 0; i < 6; i++)
        {
            Cli.Ok("plugin", "create", Path.Combine(_images, "disk.bfi"), Path.Combine(_vms, $"p{i}.vhdx"));
        }
    }

    public void Dispose()
    {
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    [Fact]
    public void ReadersAndWritersStayWithinTheCacheBudgetAndMemoryIsReleasedOnClose()
    {
        var bad = Cli.Run("mount", _vms, "--images", _images, "--cache-size", "lots", "--foreground");
        Assert.True(bad.ExitCode == 2 && bad.StdErr.Contains("--cache-size lots: not a size", StringComparison.Ordinal), bad.Output);

        using var daemon = DaemonProcess.Start(_vms, [_vms, "--images", _images, "--cache-size", $"{CacheMiB}M"]);
        long atMount = StatusMiB(daemon.Pid, "VmRSS");
        var stop = Stopwatch.StartNew();
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        long bytesRead = 0;
        var workers = new List<Thread>();
        for (int i = 0; i < 4; i++)
        {
            string plugin = Path.Combine(_vms, $"p{i}.vhdx");
            workers.Add(new Thread(() => Interlocked.Add(ref bytesRead, ReadOverAndOver(plugin, stop, errors))));
        }

        for (int i = 4; i < 6; i++)
        {
            string plugin = Path.Combine(_vms, $"p{i}.vhdx");
            int seed = i;
            workers.Add(new Thread(() => WriteOverAndOver(plugin, seed, stop, errors)));
        }

        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.True(errors.IsEmpty, string.Join('\n', errors));
        Assert.True(bytesRead > 4 * DiskSize, $"the readers read only {bytesRead >> 20} MiB: the load did not happen");

        // Under budget pressure the bytes are still exact: QEMU's reader against the raw disk.
        Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", Path.Combine(_vms, "p0.vhdx"), _dir["disk.raw"]).StdOut, StringComparison.Ordinal);

        long peak = StatusMiB(daemon.Pid, "VmHWM");
        long afterClose = long.MaxValue;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(8) && afterClose > AfterCloseMiB)
        {
            Thread.Sleep(250);
            afterClose = StatusMiB(daemon.Pid, "VmRSS");
        }

        string numbers = $"--cache-size {CacheMiB}M: RSS {atMount} MiB at mount, peak {peak} MiB, {afterClose} MiB {clock.Elapsed.TotalSeconds:F1} s after the last close; read {bytesRead >> 20} MiB";
        Console.WriteLine(numbers);
        Assert.True(peak <= CacheMiB + OverheadMiB, $"peak RSS over the cache budget plus {OverheadMiB} MiB overhead: {numbers}");
        Assert.True(afterClose <= AfterCloseMiB, $"memory not released after the last close: {numbers}");
    }

    /// <summary>Reads the plugin front to back in 1 MiB requests until the time is up (reopening at the end).</summary>
    private static long ReadOverAndOver(string plugin, Stopwatch stop, System.Collections.Concurrent.ConcurrentQueue<string> errors)
    {
        var buffer = new byte[1 << 20];
        long total = 0;
        try
        {
            while (stop.Elapsed < LoadTime)
            {
                using var handle = File.OpenHandle(plugin, FileMode.Open, FileAccess.Read);
                long length = RandomAccess.GetLength(handle);
                for (long pos = 0; pos < length && stop.Elapsed < LoadTime; pos += buffer.Length)
                {
                    total += RandomAccess.Read(handle, buffer, pos);
                }
            }
        }
        catch (IOException e)
        {
            errors.Enqueue($"reading {plugin}: {e.Message}");
        }

        return total;
    }

    /// <summary>Batches of 4..64 KiB qemu-io writes at random places, each batch its own open and close.</summary>
    private static void WriteOverAndOver(string plugin, int seed, Stopwatch stop, System.Collections.Concurrent.ConcurrentQueue<string> errors)
    {
        var rng = new Random(seed);
        while (stop.Elapsed < LoadTime)
        {
            var args = new List<string> { "-f", "vhdx" };
            for (int k = 0; k < 100; k++)
            {
                long offset = rng.NextInt64((DiskSize >> 12) - 16) << 12;
                args.AddRange(["-c", string.Create(CultureInfo.InvariantCulture, $"write -P {rng.Next(1, 255)} {offset} {rng.Next(1, 17) * 4096}")]);
            }

            args.Add(plugin);
            var r = ExternalTool.Run("qemu-io", args);
            if (r.ExitCode != 0 || r.Output.Contains("error", StringComparison.OrdinalIgnoreCase))
            {
                errors.Enqueue($"qemu-io on {plugin}: {r.Output}");
                return;
            }
        }
    }

    private static long StatusMiB(int pid, string field)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(field.Length + 1).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) >> 10;
            }
        }

        throw new InvalidOperationException($"no {field} in /proc/{pid}/status");
    }
}
