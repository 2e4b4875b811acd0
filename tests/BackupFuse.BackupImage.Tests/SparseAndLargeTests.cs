using System.Diagnostics;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.BackupImage.Tests;

public sealed class SparseAndLargeTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-big");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void OneTebibyteSparseDiskBacksUpByItsDataAndOpensByReadingOnlyMetadata()
    {
        const long size = 1L << 40;
        string disk = _dir["sparse.raw"];
        var rng = new Random(41);
        var block = new byte[1 << 20];
        var offsets = new long[] { 0, 5L << 30, (300L << 30) + 12345, size - (1 << 20) };
        using (var fs = new FileStream(disk, FileMode.Create))
        {
            fs.SetLength(size);
            foreach (long off in offsets)
            {
                rng.NextBytes(block);
                fs.Position = off;
                fs.Write(block);
            }
        }

        var sw = Stopwatch.StartNew();
        var result = BackupWriter.Backup(disk, _dir["sparse.bfi"], new BackupOptions());
        output.WriteLine($"backup of 1 TiB sparse: {sw.ElapsedMilliseconds} ms, image {result.ImageSize} bytes, read {result.SourceBytesRead} bytes");
        Assert.True(result.SourceBytesRead <= 8L << 20, $"read {result.SourceBytesRead} bytes of a disk with 4 MiB of data");

        long before = GC.GetAllocatedBytesForCurrentThread();
        sw.Restart();
        using var image = BackupImageFile.Open(_dir["sparse.bfi"]);
        var info = image.GetInfo();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"open+info: {sw.Elapsed.TotalMilliseconds:F1} ms, {image.IndexBytesRead} metadata bytes read, {allocated} bytes allocated");
        Assert.Equal(size, info.DiskSize);
        Assert.True(image.IndexBytesRead <= 4096, $"open read {image.IndexBytesRead} metadata bytes");
        Assert.True(allocated < 1 << 20, $"open allocated {allocated} bytes");
        Assert.Equal(16L << 20, info.ChunkCount);

        using var source = new BackupImageSource(image);
        var extent = source.GetExtent(1 << 20, size - (1 << 20));
        Assert.Equal(BackupFuse.Core.ExtentKind.Zero, extent.Kind);
        Assert.Equal((5L << 30) - (1 << 20), extent.Length);
        var back = new byte[1 << 20];
        source.Read(size - (1 << 20), back);
        Assert.True(block.AsSpan().SequenceEqual(back));
        source.Read(100L << 30, back);
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void HalfGibibyteOfRealFilesFullAndIncremental()
    {
        const long size = 512L << 20;
        string disk = _dir["real.raw"];
        WriteRealFileDisk(disk, size);
        string original = _dir["real-original.raw"];
        File.Copy(disk, original);

        var sw = Stopwatch.StartNew();
        var full = BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions());
        output.WriteLine($"full backup of 512 MiB: {sw.ElapsedMilliseconds} ms, image {full.ImageSize >> 20} MiB, {full.DataChunks} data chunks, payload ratio {(double)full.UniquePayloads * 65536 / full.PayloadBytes:F2}");

        MixedDataGenerator.ScatterChanges(disk, count: 40, runLength: 100_000, seed: 7);
        sw.Restart();
        BackupResult inc;
        using (var parent = BackupChain.Open(_dir["full.bfi"]))
        {
            inc = BackupWriter.Backup(disk, _dir["inc.bfi"], new BackupOptions { Parent = parent });
        }

        output.WriteLine($"incremental: {sw.ElapsedMilliseconds} ms, image {inc.ImageSize} bytes ({100.0 * inc.ImageSize / full.ImageSize:F2}% of full)");
        Assert.True(inc.ImageSize < full.ImageSize / 20, "incremental is not a small fraction of the full");

        using (var chain = BackupChain.Open(_dir["inc.bfi"]))
        using (var source = chain.CreateSource())
        {
            ImageTestKit.AssertSameContent(disk, source);
        }

        using (var chain = BackupChain.Open(_dir["full.bfi"]))
        using (var source = chain.CreateSource())
        {
            ImageTestKit.AssertSameContent(original, source);
        }
    }

    /// <summary>Files from /usr/lib and /usr/share/doc in a fixed order, with zero runs between, up to <paramref name="size"/>.</summary>
    private static void WriteRealFileDisk(string path, long size)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        fs.SetLength(size);
        var files = new[] { "/usr/share/doc", "/usr/lib" }
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint }))
            .Order(StringComparer.Ordinal);
        long pos = 0;
        int n = 0;
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            if (pos >= size)
            {
                break;
            }

            try
            {
                using var input = File.OpenRead(file);
                int read;
                while (pos < size && (read = input.Read(buffer, 0, (int)Math.Min(buffer.Length, size - pos))) > 0)
                {
                    fs.Write(buffer, 0, read);
                    pos += read;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (++n % 200 == 0)
            {
                pos = Math.Min(size, pos + (3 << 20)); // a zero run (left as a hole)
                fs.Position = pos;
            }
        }

        Assert.True(pos > size / 2, "not enough real files to fill the test disk");
    }
}
