using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.BackupImage.Tests;

public sealed class RoundTripTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDirectory _dir = new("bfi");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(ChunkCodec.Deflate, 65536, false)]
    [InlineData(ChunkCodec.Deflate, 65536, true)]
    [InlineData(ChunkCodec.None, 4096, true)]
    [InlineData(ChunkCodec.Deflate, 262144, false)]
    public void FullBackupReadsBackExactly(ChunkCodec codec, int chunkSize, bool sparse)
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, (24 << 20) + 12345, seed: chunkSize, sparse);
        var result = BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions { Codec = codec, ChunkSize = chunkSize, EntriesPerPage = 64 });

        using var image = BackupImageFile.Open(_dir["full.bfi"], pageCacheCapacity: 2);
        Assert.Equal(result.ImageId, image.Id);
        Assert.True(image.IsFull);
        Assert.Equal(new FileInfo(disk).Length, image.DiskSize);
        Assert.Equal(result.ImageSize, new FileInfo(_dir["full.bfi"]).Length);
        var info = image.GetInfo();
        Assert.Equal(info.ChunkCount, info.DataChunks + info.ZeroChunks + info.AbsentChunks);
        Assert.True(info.DataChunks > 0 && info.AbsentChunks > 0, $"expected data and zero chunks, got {info}");
        if (codec == ChunkCodec.Deflate)
        {
            Assert.True(info.CompressionRatio > 1.2, $"compression ratio {info.CompressionRatio}");
        }

        using var source = new BackupImageSource(image);
        ImageTestKit.AssertSameContent(disk, source);
        Assert.False(File.Exists(_dir["full.bfi.partial"]));
    }

    [Fact]
    public void ExtentsReportZerosAndData()
    {
        string disk = _dir["disk.raw"];
        using (var fs = new FileStream(disk, FileMode.Create))
        {
            fs.SetLength(16 << 20);
            fs.Position = 3 << 20;
            fs.Write(new byte[65536].Select((_, i) => (byte)(i * 7 + 1)).ToArray());
        }

        BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions());
        using var image = BackupImageFile.Open(_dir["full.bfi"]);
        using var source = new BackupImageSource(image);
        Assert.Equal(new Extent(0, 3 << 20, ExtentKind.Zero), source.GetExtent(0, 16 << 20));
        Assert.Equal(new Extent(3 << 20, 65536, ExtentKind.Data), source.GetExtent(3 << 20, 16 << 20));
        Assert.Equal(new Extent((3 << 20) + 65536, (13 << 20) - 65536, ExtentKind.Zero), source.GetExtent((3 << 20) + 65536, 16 << 20));
        Assert.Equal(1, image.Trailer.DataChunks);
        Assert.Equal(0, image.Trailer.ZeroChunks);
    }

    [Theory]
    [InlineData(4096)] // 256 chunks per batch
    [InlineData(65536)] // 16
    [InlineData(2 << 20)] // one chunk larger than a batch
    public void BatchesOfChunksKeepHolesShortLastChunksAndParents(int chunkSize)
    {
        // The pipeline hands out batches of up to 1 MiB of consecutive data chunks: holes (a hole inside a chunk, runs
        // of hole chunks), the short last chunk and an incremental's per-chunk comparison must come out as with one
        // chunk at a time.
        string disk = _dir["disk.raw"];
        long length = (9L << 20) + 4097;
        using (var fs = new FileStream(disk, FileMode.Create))
        {
            fs.SetLength(length);
            var rng = new Random(chunkSize);
            foreach (var (start, end) in new[] { (0L, 1_300_000L), (1_310_000L, 3L << 20), ((7L << 20) + 100, length) })
            {
                var data = new byte[end - start];
                rng.NextBytes(data);
                data.AsSpan(0, data.Length / 3).Fill(7); // some of it compresses
                fs.Position = start;
                fs.Write(data);
            }
        }

        var full = BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions { Codec = ChunkCodec.Zstd, ChunkSize = chunkSize });
        using (var image = BackupImageFile.Open(_dir["full.bfi"]))
        using (var source = new BackupImageSource(image))
        {
            ImageTestKit.AssertSameContent(disk, source);
            Assert.True(image.GetInfo().AbsentChunks > 0, "the hole run should be absent chunks");
        }

        using (var fs = new FileStream(disk, FileMode.Open))
        {
            foreach (long at in new[] { (1L << 20) - 10, 2_000_000L, length - 1 }) // across a batch edge, inside, the end
            {
                fs.Position = at;
                fs.Write(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 0, (int)Math.Min(10, length - at));
            }
        }

        using (var parent = BackupChain.Open(_dir["full.bfi"]))
        {
            var inc = BackupWriter.Backup(disk, _dir["inc.bfi"], new BackupOptions { Parent = parent });
            Assert.InRange(inc.DataChunks, 2, 4); // three changed places: two share a 2 MiB chunk, one spans two small ones
        }

        using var chain = BackupChain.Open(_dir["inc.bfi"], new ImageCatalog([_dir.Path]));
        using var chainSource = chain.CreateSource();
        ImageTestKit.AssertSameContent(disk, chainSource);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
        Assert.Equal(full.ImageId, chain.Layers[1].Id);
    }

    [Theory]
    [InlineData(2, 65536, 8)] // four per worker
    [InlineData(64, 65536, 66)] // 16 items of 2 MiB fill 32 MiB; never fewer than the workers + 2
    [InlineData(8, 4 << 20, 10)] // chunks larger than a batch: 4 items of 8 MiB, but workers + 2
    [InlineData(1, 4096, 4)]
    public void BackupQueuesHoldAtMost32MiBOfBatchesBeyondTheWorkersNeeds(int workers, int chunkSize, int depth)
    {
        Assert.Equal(depth, BackupPipeline.QueueDepth(workers, chunkSize));
    }

    [Fact]
    public void IncrementalStoresOnlyChangesAndTheChainReadsTheChangedDisk()
    {
        string disk = _dir["disk.raw"];
        string original = _dir["original.raw"];
        MixedDataGenerator.WriteFile(disk, 64 << 20, seed: 1);
        File.Copy(disk, original);
        var full = BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions { EntriesPerPage = 128 });

        MixedDataGenerator.ScatterChanges(disk, count: 24, runLength: 40_000, seed: 2);
        BackupResult inc;
        using (var parent = BackupChain.Open(_dir["full.bfi"]))
        {
            inc = BackupWriter.Backup(disk, _dir["inc1.bfi"], new BackupOptions { Parent = parent });
            // The parent's chunk data was never read: only header, trailer, directory and index pages (a page may be
            // read once per worker when workers miss on it at the same moment, hence the factor).
            long metadataBytes = parent.Top.FileLength - parent.Top.Trailer.PayloadBytes;
            Assert.InRange(parent.Top.IndexBytesRead, 1, metadataBytes * Environment.ProcessorCount);
            Assert.True(parent.Top.IndexBytesRead < parent.Top.Trailer.PayloadBytes / 10, "the incremental read the parent's data");
        }

        output.WriteLine($"full {full.ImageSize} bytes, incremental {inc.ImageSize} bytes, incremental data chunks {inc.DataChunks}, zero {inc.ZeroChunks}");
        Assert.Equal(full.ImageId, inc.ParentId);
        Assert.True(inc.ImageSize < full.ImageSize / 10, $"incremental {inc.ImageSize} is not a small fraction of full {full.ImageSize}");
        Assert.InRange(inc.DataChunks + inc.ZeroChunks, 24, 24 * 2);

        using (var chain = BackupChain.Open(_dir["inc1.bfi"], new ImageCatalog([_dir.Path])))
        {
            Assert.Equal(2, chain.Layers.Count);
            Assert.Equal(inc.ImageId, chain.Layers[0].Id);
            Assert.Equal(full.ImageId, chain.Layers[1].Id);
            using var source = chain.CreateSource();
            ImageTestKit.AssertSameContent(disk, source);
            Assert.True(ChainVerifier.Verify(chain).IsValid);
        }

        using (var fullChain = BackupChain.Open(_dir["full.bfi"]))
        using (var source = fullChain.CreateSource())
        {
            ImageTestKit.AssertSameContent(original, source);
        }

        // A second incremental over the first: unchanged disk gives an image with no chunks at all.
        using (var parent = BackupChain.Open(_dir["inc1.bfi"]))
        {
            var inc2 = BackupWriter.Backup(disk, _dir["inc2.bfi"], new BackupOptions { Parent = parent });
            Assert.Equal(0, inc2.DataChunks + inc2.ZeroChunks);
        }

        using (var chain = BackupChain.Open(_dir["inc2.bfi"]))
        using (var source = chain.CreateSource())
        {
            Assert.Equal(3, chain.Layers.Count);
            ImageTestKit.AssertSameContent(disk, source);
        }
    }

    [Fact]
    public void BackupToAForwardOnlyStreamGivesAValidImage()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 8 << 20, seed: 5, sparse: true);
        using (var fs = File.Create(_dir["piped.bfi"]))
        {
            BackupWriter.Backup(disk, new ImageTestKit.ForwardOnlyStream(fs), new BackupOptions());
        }

        using var image = BackupImageFile.Open(_dir["piped.bfi"]);
        using var source = new BackupImageSource(image);
        ImageTestKit.AssertSameContent(disk, source);
    }

    [Fact]
    public void IdenticalChunksAreStoredOnce()
    {
        var block = new byte[65536];
        MixedDataGenerator.FillText(new Random(1), block);
        var content = new byte[4 << 20];
        for (int i = 0; i < 64; i++)
        {
            block.CopyTo(content, i * 65536);
        }

        var memory = new MemorySource(content);
        var result = BackupWriter.Backup(memory, _dir["dedup.bfi"], new BackupOptions());
        Assert.Equal(64, result.DataChunks);
        Assert.Equal(1, result.UniquePayloads);
        using var chain = BackupChain.Open(_dir["dedup.bfi"]);
        using var source = chain.CreateSource();
        var back = new byte[content.Length];
        source.Read(0, back);
        Assert.True(content.AsSpan().SequenceEqual(back));
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void ProgressReachesTheTotal()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 8 << 20, seed: 9);
        var reports = new List<BackupProgress>();
        BackupWriter.Backup(disk, _dir["p.bfi"], new BackupOptions(), new SynchronousProgress<BackupProgress>(reports.Add));
        Assert.NotEmpty(reports);
        Assert.Equal(8 << 20, reports[^1].BytesDone);
        Assert.Equal(8 << 20, reports[^1].BytesTotal);
    }

    [Fact]
    public void AnExistingDestinationIsNeverOverwritten()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 1 << 20, seed: 3);
        File.WriteAllText(_dir["taken.bfi"], "keep me");
        var e = Assert.ThrowsAny<IOException>(() => BackupWriter.Backup(disk, _dir["taken.bfi"], new BackupOptions()));
        Assert.Contains("already exists", e.Message);
        Assert.Equal("keep me", File.ReadAllText(_dir["taken.bfi"]));
    }

    /// <summary>IProgress that calls back on the reporting thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>The shared layer contract (including concurrent reads) for a two-image chain of backup images.</summary>
public sealed class BackupChainConformanceTests : BlockSourceConformanceTests, IDisposable
{
    private readonly TempDirectory _dir = new("bfi-conf");
    private readonly List<IDisposable> _chains = [];

    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        string disk = _dir["disk.raw"];
        if (!File.Exists(_dir["inc.bfi"]))
        {
            MixedDataGenerator.WriteFile(disk, (6 << 20) + 4321, seed: 11, sparse: true);
            BackupWriter.Backup(disk, _dir["full.bfi"], new BackupOptions { ChunkSize = 16384, EntriesPerPage = 32 });
            MixedDataGenerator.ScatterChanges(disk, 30, 20_000, seed: 12);
            using var parent = BackupChain.Open(_dir["full.bfi"]);
            BackupWriter.Backup(disk, _dir["inc.bfi"], new BackupOptions { Parent = parent });
        }

        var chain = BackupChain.Open(_dir["inc.bfi"], pageCacheCapacity: 3);
        lock (_chains)
        {
            _chains.Add(chain);
        }

        return (chain.CreateSource(), File.ReadAllBytes(disk));
    }

    public void Dispose()
    {
        foreach (var c in _chains)
        {
            c.Dispose();
        }

        _dir.Dispose();
    }
}
