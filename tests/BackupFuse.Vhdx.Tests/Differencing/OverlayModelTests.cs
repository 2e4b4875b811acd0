using System.Diagnostics;
using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;
using Xunit.Abstractions;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>The overlay against a byte-array model: random writes of any alignment, flushes, reopens, crashes, threads.</summary>
public sealed class OverlayModelTests(ITestOutputHelper output)
{
    private const long MiB = DiffTestKit.MiB;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomWritesFlushesAndReopensMatchTheModel(int seed)
    {
        using var kit = new DiffTestKit((12 * MiB) + 1536, seed: (ulong)seed, childBlockSize: (int)MiB, exportBase: false);
        var model = kit.BaseBytes().AsSpan(0, (int)kit.Disk.Length).ToArray();
        var rng = new Random(seed);
        var overlay = kit.Overlay(kit.CreateChild());
        try
        {
            for (int op = 0; op < 300; op++)
            {
                int kind = rng.Next(100);
                if (kind < 85)
                {
                    long offset = rng.Next(4) == 0 ? rng.Next((int)(model.Length / 512)) * 512L : rng.NextInt64(model.Length);
                    int max = rng.Next(3) switch { 0 => 16, 1 => 5000, _ => 300_000 };
                    int length = (int)Math.Min(model.Length - offset, rng.Next(1, max));
                    var data = new byte[length];
                    rng.NextBytes(data);
                    overlay.Write(offset, data);
                    data.CopyTo(model, offset);
                }
                else if (kind < 92)
                {
                    overlay.Flush();
                }
                else if (kind < 97)
                {
                    overlay.Dispose();
                    overlay = kit.Overlay(kit.OpenChild());
                }
                else
                {
                    Assert.True(model.AsSpan().SequenceEqual(WritableSynthesizedVhdxTests.Read(overlay)), $"seed {seed} op {op}: full read differs");
                }

                long at = rng.NextInt64(model.Length);
                int n = (int)Math.Min(model.Length - at, rng.Next(1, 70_000));
                var check = new byte[n];
                overlay.Read(at, check);
                Assert.True(model.AsSpan((int)at, n).SequenceEqual(check), $"seed {seed} op {op}: read {at}+{n} differs");
            }

            overlay.Dispose();
            overlay = kit.Overlay(kit.OpenChild());
            Assert.True(model.AsSpan().SequenceEqual(WritableSynthesizedVhdxTests.Read(overlay)), "final read differs");
            AssertExtentsAreHonest(overlay, model);
        }
        finally
        {
            overlay.Dispose();
        }
    }

    [Fact]
    public void CrashesKeepEveryFlushedWriteAndNeverShowGarbage()
    {
        using var kit = new DiffTestKit(16 * MiB, seed: 40, childBlockSize: (int)MiB, exportBase: true);
        var truth = kit.BaseBytes().AsSpan(0, (int)kit.Disk.Length).ToArray();
        var rng = new Random(40);
        kit.CreateChild().Dispose();
        int replays = 0, torn = 0;
        for (int iteration = 0; iteration < 40; iteration++)
        {
            var flushed = (byte[])truth.Clone();
            var current = (byte[])truth.Clone();
            var later = new List<(long Offset, byte[] Data)>();
            long flushedLength = new FileInfo(kit.ChildPath).Length;
            var overlay = kit.Overlay(kit.OpenChild());
            var child = overlay.Child;
            int writes = rng.Next(1, 30);
            for (int w = 0; w < writes; w++)
            {
                long offset = rng.Next(3) == 0 ? rng.Next((int)(current.Length / 4096)) * 4096L : rng.NextInt64(current.Length);
                int length = (int)Math.Min(current.Length - offset, rng.Next(1, rng.Next(2) == 0 ? 3000 : 200_000));
                var data = new byte[length];
                rng.NextBytes(data);
                overlay.Write(offset, data);
                data.CopyTo(current, offset);
                later.Add((offset, data));
                if (rng.Next(6) == 0)
                {
                    overlay.Flush();
                    current.CopyTo(flushed, 0);
                    later.Clear();
                    flushedLength = new FileInfo(kit.ChildPath).Length;
                }
            }

            int mode = rng.Next(4);
            if (mode >= 2)
            {
                // Crash inside a Flush, after its log entry is on disk but before it is applied; mode 3 also tears the entry.
                int position = child.Log.WritePosition;
                child.Log.AfterEntryWritten = () => throw new IOException("simulated crash");
                bool crashed = Record.Exception(() => overlay.Flush()) is IOException;
                child.SimulateCrash();
                if (crashed && mode == 3)
                {
                    using var raw = new FileBlockSource(kit.ChildPath, writable: true);
                    raw.Write(DifferencingVhdxFormat.LogOffset + position + 200, new byte[] { 0xA5, 0x5A });
                    torn++;
                }
            }
            else
            {
                child.SimulateCrash();
                if (mode == 1)
                {
                    long length = new FileInfo(kit.ChildPath).Length;
                    using var raw = File.OpenHandle(kit.ChildPath, FileMode.Open, FileAccess.ReadWrite);
                    RandomAccess.SetLength(raw, flushedLength + rng.NextInt64(length - flushedLength + 1));
                }
            }

            overlay.Dispose(); // the crashed child is already gone; this only releases the chain

            overlay = kit.Overlay(kit.OpenChild());
            replays += overlay.Child.ReplayedLogEntries > 0 ? 1 : 0;
            var seen = WritableSynthesizedVhdxTests.Read(overlay);
            overlay.Dispose();
            CheckAllowed(seen, flushed, later, $"iteration {iteration} mode {mode}");
            truth = seen;

            if (iteration % 8 == 7)
            {
                var info = ExternalTool.Run("vhdiinfo", [kit.ChildPath]);
                Assert.True(info.ExitCode == 0 && info.StdOut.Contains("Differential", StringComparison.Ordinal), info.Output);
            }
        }

        Assert.True(replays >= 5 && torn >= 2, $"the crash modes were not exercised: {replays} replays, {torn} torn entries");
        var seven = ExternalTool.Run("7zz", ["t", kit.ChildPath]);
        Assert.True(seven.ExitCode == 0 && seven.StdOut.Contains("Everything is Ok", StringComparison.Ordinal), seven.Output);
    }

    [Fact]
    public async Task ConcurrentWritersSharingSectorsLoseNothing()
    {
        using var kit = new DiffTestKit(8 * MiB, seed: 50, childBlockSize: (int)MiB, exportBase: false);
        var model = kit.BaseBytes().AsSpan(0, (int)kit.Disk.Length).ToArray();
        const int Threads = 4;
        const int Stripe = 200; // bytes; thread t owns stripes where (offset / Stripe) % Threads == t, so sectors are shared
        using (var overlay = kit.Overlay(kit.CreateChild()))
        {
            var writers = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
            {
                var rng = new Random(t);
                for (int i = 0; i < 400; i++)
                {
                    long stripe = (rng.NextInt64(model.Length / Stripe / Threads) * Threads) + t;
                    var data = new byte[Stripe];
                    rng.NextBytes(data);
                    overlay.Write(stripe * Stripe, data);
                    lock (model)
                    {
                        data.CopyTo(model, stripe * Stripe);
                    }

                    if (i % 97 == 0)
                    {
                        overlay.Flush();
                    }
                }
            })).ToList();
            var reader = Task.Run(() =>
            {
                var buffer = new byte[65536];
                var rng = new Random(99);
                while (!writers.TrueForAll(w => w.IsCompleted))
                {
                    overlay.Read(rng.NextInt64(model.Length - buffer.Length), buffer);
                }
            });
            await Task.WhenAll([.. writers, reader]);
            Assert.True(model.AsSpan().SequenceEqual(WritableSynthesizedVhdxTests.Read(overlay)), "a concurrent read-modify-write lost bytes");
        }

        using var again = kit.Overlay(kit.OpenChild());
        Assert.True(model.AsSpan().SequenceEqual(WritableSynthesizedVhdxTests.Read(again)), "differs after reopen");
    }

    [Fact]
    public void RandomFourKibWriteThroughputIsReported()
    {
        using var kit = new DiffTestKit(1L << 30, exportBase: false, disk: new ZeroSource(1L << 30));
        var rng = new Random(8);
        var data = new byte[4096];
        rng.NextBytes(data);
        const int Count = 20_000;
        var offsets = Enumerable.Range(0, Count).Select(_ => rng.NextInt64((1L << 30) / 4096) * 4096).ToArray();
        using var overlay = kit.Overlay(kit.CreateChild());
        var sw = Stopwatch.StartNew();
        foreach (long offset in offsets)
        {
            overlay.Write(offset, data);
        }

        overlay.Flush();
        double fresh = Count / sw.Elapsed.TotalSeconds;
        sw.Restart();
        foreach (long offset in offsets)
        {
            overlay.Write(offset, data);
        }

        overlay.Flush();
        double rewrite = Count / sw.Elapsed.TotalSeconds;
        var stats = overlay.Child.GetStatistics();
        output.WriteLine($"random 4 KiB writes over a 1 GiB disk, 2 MiB blocks: {fresh:F0}/s into new/partial blocks ({fresh * 4 / 1024:F1} MiB/s), {rewrite:F0}/s rewriting ({rewrite * 4 / 1024:F1} MiB/s); {stats.AllocatedBlocks} blocks, file {stats.FileLength >> 20} MiB");
        var back = new byte[4096];
        overlay.Read(offsets[^1], back);
        Assert.Equal(data, back);
        Assert.Equal(512, stats.AllocatedBlocks);
    }

    private static void CheckAllowed(byte[] seen, byte[] flushed, List<(long Offset, byte[] Data)> later, string what)
    {
        // A byte equal to its flushed value is always fine; any other byte must come from a later write covering it.
        int b = 0;
        while (b < seen.Length)
        {
            b += seen.AsSpan(b).CommonPrefixLength(flushed.AsSpan(b));
            if (b >= seen.Length)
            {
                break;
            }

            bool ok = false;
            for (int i = later.Count - 1; i >= 0 && !ok; i--)
            {
                var (offset, data) = later[i];
                ok = b >= offset && b < offset + data.Length && data[b - offset] == seen[b];
            }

            Assert.True(ok, $"{what}: byte {b} is 0x{seen[b]:x2}, neither its flushed value 0x{flushed[b]:x2} nor a later write");
            b++;
        }
    }

    private static void AssertExtentsAreHonest(IBlockSource source, byte[] model)
    {
        long pos = 0;
        while (pos < source.Length)
        {
            var e = source.GetExtent(pos, long.MaxValue);
            Assert.Equal(pos, e.Offset);
            Assert.True(e.Length > 0);
            if (e.Kind == ExtentKind.Zero)
            {
                Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"zero extent {e} holds data");
            }

            pos = e.End;
        }
    }
}
