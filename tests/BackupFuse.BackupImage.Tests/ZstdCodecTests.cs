using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// The zstd codec (issue 17): every codec round-trips; chains mixing Deflate and zstd read and merge into the same
/// bytes (merge recompresses the payloads of a layer whose codec is not the result's); a damaged zstd frame is an
/// error naming the chunk, never other bytes.
/// </summary>
public sealed class ZstdCodecTests : IDisposable
{
    private const int Chunk = 16384;
    private readonly TempDirectory _dir = new("bfzstd");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void LibZstdIsInstalledWhereTheTestsRun()
    {
        Assert.True(LibZstd.Available, ChunkCompressor.ZstdImplementation);
        Assert.True(ChunkCompressor.MaxZstdLevel >= 19);
    }

    [Theory]
    [InlineData(ChunkCodec.None, 0)]
    [InlineData(ChunkCodec.Deflate, 1)]
    [InlineData(ChunkCodec.Deflate, 9)]
    [InlineData(ChunkCodec.Zstd, 1)]
    [InlineData(ChunkCodec.Zstd, 3)]
    [InlineData(ChunkCodec.Zstd, 19)]
    public void EveryCodecRoundTrips(ChunkCodec codec, int level)
    {
        string raw = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(raw, (6L << 20) + 1000, seed: 5); // a short last chunk
        string image = _dir["disk.bfi"];
        var result = BackupWriter.Backup(raw, image, new BackupOptions
        {
            Codec = codec,
            ChunkSize = Chunk,
            DeflateLevel = codec == ChunkCodec.Deflate ? level : ChunkCompressor.DefaultLevel,
            ZstdLevel = codec == ChunkCodec.Zstd ? level : ChunkCompressor.DefaultZstdLevel,
        });

        using var chain = BackupChain.Open(image);
        Assert.Equal(codec, chain.Top.Header.Codec);
        Assert.Equal(codec == ChunkCodec.Zstd ? 2 : (int)codec, File.ReadAllBytes(image)[72]); // docs/format.md, header byte 72
        long compressed = Enumerable.Range(0, (int)chain.Top.ChunkCount).Count(c => (chain.Top.GetEntry(c).Flags & ChunkFlags.Compressed) != 0);
        Assert.True(codec == ChunkCodec.None ? compressed == 0 : compressed > 0, $"{codec} {level}: {compressed} compressed chunks of {result.DataChunks}");

        using var source = chain.CreateSource();
        ImageTestKit.AssertSameContent(raw, source);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void ZstdRejectsWrongLengthsTrailingBytesAndGarbage()
    {
        var chunk = new byte[Chunk];
        MixedDataGenerator.FillText(new Random(3), chunk);
        var packed = new byte[Chunk];
        Assert.True(ChunkCompressor.TryCompress(ChunkCodec.Zstd, chunk, packed, 1, out int n));
        var back = new byte[Chunk];
        Assert.True(LibZstd.TryDecompress(packed.AsSpan(0, n), back));
        Assert.True(back.AsSpan().SequenceEqual(chunk));
        Assert.False(LibZstd.TryDecompress(packed.AsSpan(0, n), new byte[Chunk - 1]), "too little room must fail");
        Assert.False(LibZstd.TryDecompress(packed.AsSpan(0, n), new byte[Chunk + 1]), "a short frame must fail");
        Assert.False(LibZstd.TryDecompress(packed.AsSpan(0, n + 3), new byte[Chunk]), "bytes after the frame must fail");
        Assert.False(LibZstd.TryDecompress(packed.AsSpan(0, n - 1), new byte[Chunk]), "a truncated frame must fail");
        var garbage = new byte[n];
        new Random(3).NextBytes(garbage);
        Assert.False(LibZstd.TryDecompress(garbage, new byte[Chunk]));

        // The codecs do not read each other's payloads.
        var deflated = new byte[Chunk];
        Assert.True(ChunkCompressor.TryCompress(ChunkCodec.Deflate, chunk, deflated, 1, out int dn));
        Assert.False(ChunkCompressor.TryDecompress(ChunkCodec.Zstd, deflated, 0, dn, new byte[Chunk]));
        Assert.False(ChunkCompressor.TryDecompress(ChunkCodec.Deflate, packed, 0, n, new byte[Chunk]));
    }

    [Fact]
    public void ACorruptZstdFrameIsAnErrorNamingTheChunkNeverOtherBytes()
    {
        string raw = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(raw, 1L << 20, seed: 8);
        string good = _dir["good.bfi"];
        BackupWriter.Backup(raw, good, new BackupOptions { Codec = ChunkCodec.Zstd, ChunkSize = Chunk });

        // 1. A bit flipped on disk inside a zstd payload: the payload CRC catches it (docs/format.md, section 6, step 11).
        string flipped = _dir["flipped.bfi"];
        File.Copy(good, flipped);
        long chunk;
        ChunkEntry entry;
        using (var image = BackupImageFile.Open(good))
        {
            chunk = Enumerable.Range(0, (int)image.ChunkCount).First(c => (image.GetEntry(c).Flags & ChunkFlags.Compressed) != 0);
            entry = image.GetEntry(chunk);
        }

        ImageTestKit.FlipBit(flipped, entry.PayloadOffset + (entry.StoredLength / 2));
        AssertChunkFails(flipped, chunk, "checksum mismatch");

        // 2. Frames whose CRC is right but which are not one chunk's worth of zstd (a writer bug, or a forged CRC):
        //    truncated, with bytes after the frame, a frame of another length, Deflate in a zstd image.
        var plain = new byte[Chunk];
        using (var image = BackupImageFile.Open(good))
        {
            image.ReadChunk(chunk, plain);
        }

        var frame = new byte[Chunk];
        Assert.True(ChunkCompressor.TryCompress(ChunkCodec.Zstd, plain, frame, 1, out int n));
        var shorter = new byte[Chunk];
        Assert.True(ChunkCompressor.TryCompress(ChunkCodec.Zstd, plain.AsSpan(0, Chunk - 512), shorter, 1, out int sn));
        var deflated = new byte[Chunk];
        Assert.True(ChunkCompressor.TryCompress(ChunkCodec.Deflate, plain, deflated, 1, out int dn));
        var bad = new (string Name, byte[] Payload)[]
        {
            ("truncated", frame[..(n - 4)]),
            ("trailing", [.. frame[..n], 1, 2, 3]),
            ("shorter", shorter[..sn]),
            ("deflate", deflated[..dn]),
        };
        foreach (var (name, payload) in bad)
        {
            string path = _dir[name + ".bfi"];
            WriteOneChunkImage(good, path, chunk, ChunkHash.Of(plain), payload);
            AssertChunkFails(path, chunk, "does not decompress");
        }
    }

    [Theory]
    [InlineData(ChunkCodec.Deflate, ChunkCodec.Zstd)]
    [InlineData(ChunkCodec.Zstd, ChunkCodec.Deflate)]
    [InlineData(ChunkCodec.Zstd, ChunkCodec.None)]
    public void AMixedChainMergesIntoTheSameBytes(ChunkCodec fullCodec, ChunkCodec incrementalCodec)
    {
        string raw = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(raw, 4L << 20, seed: 12);
        string full = _dir["full.bfi"];
        BackupWriter.Backup(raw, full, new BackupOptions { Codec = fullCodec, ChunkSize = Chunk });
        ChangeText(raw, seed: 13);
        string inc1 = _dir["inc1.bfi"];
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(raw, inc1, new BackupOptions { Parent = parent, Codec = incrementalCodec });
        }

        ChangeText(raw, seed: 14);
        string inc2 = _dir["inc2.bfi"];
        using (var parent = BackupChain.Open(inc1))
        {
            BackupWriter.Backup(raw, inc2, new BackupOptions { Parent = parent, Codec = fullCodec });
        }

        using (var chain = BackupChain.Open(inc2))
        using (var source = chain.CreateSource())
        {
            ImageTestKit.AssertSameContent(raw, source); // the mixed chain itself reads right
            ImageFolder.Fold(chain, 3, _dir["synthetic.bfi"], passphrase: null, replace: false);
            ImageFolder.Fold(chain, 2, _dir["into-parent.bfi"], passphrase: null, replace: false);
        }

        foreach (string merged in new[] { _dir["synthetic.bfi"], _dir["into-parent.bfi"] })
        {
            using var chain = BackupChain.Open(merged);
            Assert.Equal(fullCodec, chain.Top.Header.Codec); // the newest folded layer with a codec
            using var source = chain.CreateSource();
            ImageTestKit.AssertSameContent(raw, source);
            Assert.True(ChainVerifier.Verify(chain).IsValid);
        }
    }

    /// <summary>Overwrites 12 scattered runs of 40000 bytes with new compressible text (so incrementals hold compressed chunks).</summary>
    private static void ChangeText(string path, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        var buffer = new byte[40000];
        for (int i = 0; i < 12; i++)
        {
            MixedDataGenerator.FillText(rng, buffer);
            fs.Position = rng.NextInt64(fs.Length - buffer.Length);
            fs.Write(buffer);
        }
    }

    private static void WriteOneChunkImage(string like, string path, long chunk, ChunkHash hash, byte[] payload)
    {
        ImageHeader header;
        using (var image = BackupImageFile.Open(like))
        {
            header = image.Header with { ImageId = Guid.NewGuid() };
        }

        using var fs = File.Create(path);
        var writer = new ImageStreamWriter(fs, header, keys: null, deduplicate: false);
        writer.AddData(chunk, hash, payload, ChunkFlags.Compressed);
        writer.Finish();
    }

    private static void AssertChunkFails(string path, long chunk, string expected)
    {
        using var image = BackupImageFile.Open(path);
        var destination = new byte[image.ChunkLength(chunk)];
        var e = Assert.Throws<InvalidDataException>(() => image.ReadChunk(chunk, destination));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains($"chunk {chunk} ", e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.True(destination.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a failed chunk must not leave bytes in the caller's buffer");
    }
}
