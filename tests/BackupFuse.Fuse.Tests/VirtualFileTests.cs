using System.Globalization;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>Files the provider declares virtual: size, bytes, sparseness and errors come from an IBlockSource.</summary>
public sealed class VirtualFileTests(ITestOutputHelper output)
{
    private const long PatternSize = (3 * 1024 * 1024) + 1000; // not a multiple of anything
    private const long SparseSize = 1024 * 1024;               // 16 blocks of 64 KiB, the even ones zero
    private const long MemorySize = 1024 * 1024;

    private static void Populate(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "disk.vhdx"), MarkerFileProvider.Content(PatternSize));
        File.WriteAllText(Path.Combine(dir, "sparse.vhdx"), MarkerFileProvider.Content(SparseSize, "sparse"));
        File.WriteAllText(Path.Combine(dir, "real.vhdx"), "vhdxfile: a real VHDX would start like this");
        File.WriteAllText(Path.Combine(dir, "broken.vhdx"), MarkerFileProvider.Content(4096, fail: "open-io"));
        File.WriteAllText(Path.Combine(dir, "denied.vhdx"), MarkerFileProvider.Content(4096, fail: "open-deny"));
        File.WriteAllText(Path.Combine(dir, "damaged.vhdx"), MarkerFileProvider.Content(4096, fail: "probe-io"));
        File.WriteAllText(Path.Combine(dir, "rw.vhdx"), MarkerFileProvider.Content(MemorySize, "memory"));
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "plain file");
    }

    [SkippableFact]
    public void StatAndListing_ReportVirtualSizeAndSparseBlocks()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, Populate, new MarkerFileProvider());
        Assert.Equal(PatternSize, new FileInfo(m["disk.vhdx"]).Length);

        var stat = ExternalTool.Check("stat", "-c", "%s %b %F", m["sparse.vhdx"]).StdOut.Trim().Split(' ', 3);
        Assert.Equal(SparseSize.ToString(CultureInfo.InvariantCulture), stat[0]);
        Assert.Equal("1024", stat[1]);            // 8 data blocks of 64 KiB = 1024 sectors, half the size
        Assert.Equal("regular file", stat[2]);

        var full = ExternalTool.Check("stat", "-c", "%b", m["disk.vhdx"]).StdOut.Trim();
        Assert.Equal(((PatternSize + 511) / 512).ToString(CultureInfo.InvariantCulture), full);

        var listing = ExternalTool.Run("ls", ["-l", m.MountPoint]);
        output.WriteLine(listing.Output);
        Assert.Equal(1, listing.ExitCode); // damaged.vhdx cannot be stat'ed (its Probe throws) ...
        Assert.Contains("damaged.vhdx': Input/output error", listing.StdErr);
        var ls = listing.StdOut;                // ... and everything else is listed
        Assert.Contains($" {PatternSize} ", ls);
        Assert.Contains("disk.vhdx", ls);
        Assert.Contains("broken.vhdx", ls); // listed even though opening it fails

        // A .vhdx without the marker passes through untouched.
        Assert.Equal("vhdxfile: a real VHDX would start like this", File.ReadAllText(m["real.vhdx"]));
        Assert.Equal("plain file", File.ReadAllText(m["notes.txt"]));
    }

    [SkippableFact]
    public void Read_ReturnsTheSourceBytes_AndAShortReadAtEof()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, Populate, new MarkerFileProvider());
        var expected = MarkerFileProvider.Pattern(PatternSize);
        using var handle = File.OpenHandle(m["disk.vhdx"]);
        var buffer = new byte[200_000];
        foreach (long offset in new long[] { 0, 1, 4095, 65536 + 17, 1024 * 1024, PatternSize - 200_000 })
        {
            Assert.Equal(buffer.Length, RandomAccess.Read(handle, buffer, offset));
            AssertPattern(expected, offset, buffer);
        }

        // Crossing EOF: only the bytes up to EOF come back.
        Assert.Equal(1000, RandomAccess.Read(handle, buffer.AsSpan(0, 4096), PatternSize - 1000));
        AssertPattern(expected, PatternSize - 1000, buffer.AsSpan(0, 1000));
        Assert.Equal(0, RandomAccess.Read(handle, buffer.AsSpan(0, 4096), PatternSize));

        // The whole file with cat, compared against a materialized copy.
        var all = new byte[PatternSize];
        expected.Read(0, all);
        string reference = Path.Combine(Path.GetDirectoryName(m.Directory)!, "disk.ref");
        File.WriteAllBytes(reference, all);
        var cmp = ExternalTool.Run("cmp", [m["disk.vhdx"], reference]);
        Assert.True(cmp.ExitCode == 0, cmp.Output);
    }

    [SkippableFact]
    public void SeekDataAndHole_FollowTheSourceExtents()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, Populate, new MarkerFileProvider());
        const long b = MarkerFileProvider.SparseBlock;
        int fd = Posix.Open(m["sparse.vhdx"], Posix.O_RDONLY);
        Assert.True(fd >= 0, $"open: {fd}");
        try
        {
            Assert.Equal(b, Posix.Lseek(fd, 0, Posix.SEEK_DATA));          // block 0 is zero
            Assert.Equal(b + 5, Posix.Lseek(fd, b + 5, Posix.SEEK_DATA));  // inside data
            Assert.Equal(2 * b, Posix.Lseek(fd, b, Posix.SEEK_HOLE));      // block 2 is zero
            Assert.Equal(10, Posix.Lseek(fd, 10, Posix.SEEK_HOLE));        // inside a hole
            Assert.Equal(SparseSize, Posix.Lseek(fd, (15 * b) + 1, Posix.SEEK_HOLE)); // last block is data: hole at EOF
            Assert.Equal(-Errno.ENXIO, Posix.Lseek(fd, SparseSize, Posix.SEEK_DATA));
            Assert.Equal(-Errno.ENXIO, Posix.Lseek(fd, SparseSize + 10, Posix.SEEK_HOLE));
        }
        finally
        {
            Posix.Close(fd);
        }

        // The holes read as zeros, the data as the pattern.
        var expected = MarkerFileProvider.Sparse(SparseSize);
        var all = File.ReadAllBytes(m["sparse.vhdx"]);
        Assert.Equal(SparseSize, all.Length);
        AssertPattern(expected, 0, all);
        Assert.All(all.AsSpan(0, (int)b).ToArray(), x => Assert.Equal(0, x));
    }

    [SkippableFact]
    public void ProviderFailures_FailOnlyThatFile_WithTheMappedErrno()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, Populate, new MarkerFileProvider());
        Assert.Equal(-Errno.EIO, Posix.Open(m["broken.vhdx"], Posix.O_RDONLY));
        Assert.Equal(-Errno.EACCES, Posix.Open(m["denied.vhdx"], Posix.O_RDONLY));
        var ex = Assert.ThrowsAny<IOException>(() => new FileInfo(m["damaged.vhdx"]).Length);
        output.WriteLine(ex.Message);

        // The rest of the mount keeps working.
        Assert.Equal("plain file", File.ReadAllText(m["notes.txt"]));
        Assert.Equal(PatternSize, new FileInfo(m["disk.vhdx"]).Length);
        Assert.Equal(16, File.ReadAllBytes(m["disk.vhdx"]).AsSpan(0, 16).Length);

        // One log line per failure naming the file.
        var lines = m.Log.Lines.Where(l => l.Level >= FuseLogLevel.Warning).Select(l => l.Message).ToList();
        Assert.Contains(lines, l => l.Contains("broken.vhdx", StringComparison.Ordinal) && l.Contains("EIO", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("denied.vhdx", StringComparison.Ordinal) && l.Contains("EACCES", StringComparison.Ordinal));
        Assert.Single(lines, l => l.StartsWith("open /broken.vhdx", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void WritableSource_TakesWrites_ButNeverGrowsOrShrinks()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        var provider = new MarkerFileProvider();
        using var m = new TestMount(output, Populate, provider);
        int fd = Posix.Open(m["rw.vhdx"], Posix.O_RDWR);
        Assert.True(fd >= 0, $"open: {fd}");
        try
        {
            Assert.Equal(5, Posix.Pwrite(fd, "hello"u8.ToArray(), 4096));
            Assert.Equal(-Errno.EFBIG, Posix.Pwrite(fd, new byte[10], MemorySize - 5));
        }
        finally
        {
            Posix.Close(fd);
        }

        Assert.Equal("hello"u8.ToArray(), provider.MemoryOf("rw.vhdx").ToArray().AsSpan(4096, 5).ToArray());
        using (var h = File.OpenHandle(m["rw.vhdx"]))
        {
            var back = new byte[5];
            Assert.Equal(5, RandomAccess.Read(h, back, 4096));
            Assert.Equal("hello"u8.ToArray(), back);
        }

        Assert.Equal(-Errno.EPERM, Posix.Truncate(m["rw.vhdx"], 10));
        Assert.Equal(-Errno.EPERM, Posix.Open(m["rw.vhdx"], Posix.O_RDWR | Posix.O_TRUNC));
        Assert.Equal(0, Posix.Truncate(m["rw.vhdx"], MemorySize)); // to its own size: a no-op
        Assert.Equal(-Errno.EROFS, Posix.Open(m["disk.vhdx"], Posix.O_RDWR)); // the pattern source is read-only
        Assert.Equal(MemorySize, new FileInfo(m["rw.vhdx"]).Length);

        // The plugin file underneath is untouched.
        m.Unmount();
        Assert.Equal(MarkerFileProvider.Content(MemorySize, "memory"), File.ReadAllText(Path.Combine(m.Directory, "rw.vhdx")));
    }

    [SkippableFact]
    public void ParallelReaders_GetTheRightBytes()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        const long size = 64L * 1024 * 1024;
        using var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "big.vhdx"), MarkerFileProvider.Content(size, "fast")), new MarkerFileProvider());
        var expected = new FastPatternSource(size);
        RunReaders(6, (t, failures) =>
        {
            var random = new Random(t);
            using var h = File.OpenHandle(m["big.vhdx"]);
            var buffer = new byte[1 << 20];
            for (int i = 0; i < 40; i++)
            {
                long offset = random.NextInt64(size - buffer.Length);
                int len = random.Next(1, buffer.Length);
                int n = RandomAccess.Read(h, buffer.AsSpan(0, len), offset);
                CheckRead(failures, t, expected, buffer.AsSpan(0, n), len, offset, step: 997);
            }
        });

        // For reference only (no assertion on time): sequential read speed with dd bs=1M.
        var dd = ExternalTool.Run("dd", [$"if={m["big.vhdx"]}", "of=/dev/null", "bs=1M"]);
        Assert.Equal(0, dd.ExitCode);
        output.WriteLine(dd.StdErr.Trim());
    }

    [SkippableFact]
    public void SequentialReaders_GetTheRightBytes_AndAWritableFileShowsEachWrite()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        // The read-ahead runs on the thread pool, which the test host keeps busy: without spare threads every
        // read-ahead would still be queued when the next read comes (taken back), and the writable part below
        // would pass even with read-ahead on writable files.
        ThreadPool.GetMinThreads(out int workers, out int completion);
        ThreadPool.SetMinThreads(Math.Max(workers, 16), completion);
        try
        {
            SequentialReadersAndWrites();
        }
        finally
        {
            ThreadPool.SetMinThreads(workers, completion);
        }
    }

    private void SequentialReadersAndWrites()
    {
        const long size = 32L * 1024 * 1024;
        var provider = new MarkerFileProvider();
        using var m = new TestMount(output, d =>
        {
            Populate(d);
            File.WriteAllText(Path.Combine(d, "big.vhdx"), MarkerFileProvider.Content(size, "fast"));
        }, provider);

        // Read-only sources are read ahead for a sequential reader: two threads each read the file from start to end
        // through a handle of their own, and two more share one handle, so its reads are only partly sequential.
        var expected = new FastPatternSource(size);
        using var shared = File.OpenHandle(m["big.vhdx"]);
        RunReaders(4, (t, failures) =>
        {
            using var own = t < 2 ? File.OpenHandle(m["big.vhdx"]) : null;
            var h = own ?? shared;
            var buffer = new byte[(t + 1) * 192 * 1024];
            for (long offset = 0; offset < size; offset += buffer.Length)
            {
                int n = RandomAccess.Read(h, buffer, offset);
                CheckRead(failures, t, expected, buffer.AsSpan(0, n), (int)Math.Min(buffer.Length, size - offset), offset, step: 509);
            }
        });

        // A writable source is never read ahead: a sequential reader sees what another descriptor wrote into the
        // range it would have read next.
        const int block = 64 * 1024;
        int writer = Posix.Open(m["rw.vhdx"], Posix.O_RDWR);
        Assert.True(writer >= 0, $"open: {writer}");
        try
        {
            // Data everywhere first (never-written ranges of the memory source are holes, which are not read ahead).
            Assert.Equal(MemorySize, Posix.Pwrite(writer, Enumerable.Repeat((byte)0xAB, (int)MemorySize).ToArray(), 0));
            using var reader = File.OpenHandle(m["rw.vhdx"]);
            var buffer = new byte[block];
            for (long offset = 0; offset < MemorySize; offset += block)
            {
                var stamp = System.Text.Encoding.ASCII.GetBytes($"written at {offset}");
                Assert.Equal(stamp.Length, Posix.Pwrite(writer, stamp, offset));
                Assert.Equal(block, RandomAccess.Read(reader, buffer, offset));
                Assert.Equal(stamp, buffer.AsSpan(0, stamp.Length).ToArray());
                Thread.Sleep(20); // time for a read-ahead of the next block (were there one) to finish before the write
            }
        }
        finally
        {
            Posix.Close(writer);
        }
    }

    /// <summary>Runs <paramref name="count"/> reader threads; a failure any of them adds (or throws) fails the test.</summary>
    private static void RunReaders(int count, Action<int, System.Collections.Concurrent.ConcurrentBag<string>> reader)
    {
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var threads = Enumerable.Range(0, count).Select(t => new Thread(() =>
        {
            try
            {
                reader(t, failures);
            }
            catch (Exception e)
            {
                failures.Add($"thread {t}: {e}");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.All(threads, t => Assert.True(t.Join(TimeSpan.FromSeconds(60)), "reader thread hung"));
        Assert.Empty(failures);
    }

    /// <summary>Adds a failure when <paramref name="read"/> is short or a sampled byte (every <paramref name="step"/>-th) is wrong.</summary>
    private static void CheckRead(System.Collections.Concurrent.ConcurrentBag<string> failures, int thread, FastPatternSource expected, ReadOnlySpan<byte> read, int length, long offset, int step)
    {
        if (read.Length != length)
        {
            failures.Add($"thread {thread}: short read {read.Length}/{length} at {offset}");
        }

        for (int k = 0; k < read.Length; k += step)
        {
            if (read[k] != expected.ByteAt(offset + k))
            {
                failures.Add($"thread {thread}: wrong byte at {offset + k}");
                return;
            }
        }
    }

    private static void AssertPattern(PatternSource expected, long offset, ReadOnlySpan<byte> actual)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            if (actual[i] != expected.ByteAt(offset + i))
            {
                Assert.Fail($"byte at {offset + i}: expected {expected.ByteAt(offset + i)}, got {actual[i]}");
            }
        }
    }
}
