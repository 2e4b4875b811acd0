using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// Raw payloads carry a CRC-32C per 4 KiB sector (ChunkFlags.SectorChecksums), so a part of a chunk is read and checked
/// without the rest; damage to a sector or to its table entry is found by the reads that touch it, never served.
/// </summary>
public sealed class SectorChecksumTests : IDisposable
{
    private const int Chunk = 65536;
    private const long DiskLength = (16L * Chunk) + 4608; // a short last chunk whose last sector is short too
    private readonly TempDirectory _dir = new("bfi-sectors");
    private readonly string _disk;
    private readonly byte[] _bytes;

    public SectorChecksumTests()
    {
        _disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(_disk, DiskLength, seed: 5);
        _bytes = File.ReadAllBytes(_disk);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RawChunksCarryTheirTable_AndAnyPartReadsRightOnItsOwn()
    {
        string image = Backup("raw.bfi", ChunkCodec.None);
        using var file = BackupImageFile.Open(image);
        int withTable = 0;
        for (long c = 0; c < file.ChunkCount; c++)
        {
            var e = file.GetEntry(c);
            if (e.Kind == ChunkKind.Data)
            {
                Assert.Equal(ChunkFlags.SectorChecksums, e.Flags);
                Assert.Equal(file.ChunkLength(c) + (4 * ((file.ChunkLength(c) + 4095) / 4096)), e.StoredLength);
                withTable++;
            }
        }

        Assert.True(withTable >= 10, $"only {withTable} data chunks");
        using var source = new BackupImageSource(file);
        var rng = new Random(7);
        for (int i = 0; i < 400; i++)
        {
            long offset = i < 40 ? (rng.Next(0, (int)(DiskLength / 4096)) * 4096L) : rng.NextInt64(0, DiskLength - 1);
            int length = (int)Math.Min(DiskLength - offset, i % 3 == 0 ? 4096 : rng.Next(1, 3 * 4096));
            var got = new byte[length];
            source.Read(offset, got);
            Assert.True(_bytes.AsSpan((int)offset, length).SequenceEqual(got), $"bytes at {offset}+{length}");
            long chunk = offset / Chunk;
            bool oneChunk = (offset + length - 1) / Chunk == chunk;
            Assert.Equal(oneChunk, source.ReadsPartCheaply(offset, length));
        }

        ImageTestKit.AssertSameContent(_disk, source);
        using var chain = BackupChain.Open(image);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void CompressedAndEncryptedPayloadsHaveNoTable_AndTheirPartsAreNotCheap()
    {
        string zstd = Backup("zstd.bfi", ChunkCodec.Zstd);
        string sealedImage = _dir["enc.bfi"];
        BackupWriter.Backup(_disk, sealedImage, new BackupOptions { Codec = ChunkCodec.None, Encrypt = true, Passphrase = PassphraseSource.FromString("sector tables"), KdfIterations = BackupOptions.MinKdfIterations });
        int compressed = 0, raw = 0;
        using (var file = BackupImageFile.Open(zstd))
        using (var source = new BackupImageSource(file))
        {
            for (long c = 0; c < file.ChunkCount; c++)
            {
                var e = file.GetEntry(c);
                if (e.Kind != ChunkKind.Data)
                {
                    continue;
                }

                // Word salad compresses; random runs do not and are stored raw, with their table.
                Assert.True(e.Flags is ChunkFlags.Compressed or ChunkFlags.SectorChecksums, $"chunk {c}: {e.Flags}");
                Assert.Equal(e.Flags == ChunkFlags.SectorChecksums, source.ReadsPartCheaply((c * Chunk) + 4096, 4096));
                // Whole, a raw chunk is a checked copy; a compressed one is decoded, however fast: never cheap.
                Assert.Equal(e.Flags == ChunkFlags.SectorChecksums, source.ReadsPartCheaply(c * Chunk, file.ChunkLength(c)));
                _ = e.Flags == ChunkFlags.Compressed ? compressed++ : raw++;
            }

            ImageTestKit.AssertSameContent(_disk, source);
        }

        Assert.True(compressed > 0 && raw > 0, $"{compressed} compressed and {raw} raw chunks: the data should give both");
        using var encrypted = BackupImageFile.Open(sealedImage, PassphraseSource.FromString("sector tables"));
        for (long c = 0; c < encrypted.ChunkCount; c++)
        {
            var e = encrypted.GetEntry(c);
            Assert.True(e.Kind != ChunkKind.Data || e.Flags == ChunkFlags.Encrypted, $"chunk {c}: {e.Flags}");
            Assert.False(e.Kind == ChunkKind.Data && encrypted.CanReadChunkPart(c));
            Assert.Equal(e.Kind != ChunkKind.Data, encrypted.ReadsWholeChunkAsCopy(c));
        }
    }

    [Fact]
    public void ADamagedSectorFailsTheReadsThatTouchIt_OtherSectorsOfTheChunkStillRead()
    {
        string image = Backup("raw.bfi", ChunkCodec.None);
        var (chunk, payload) = DataChunk(image);
        ImageTestKit.FlipBit(image, payload + (5 * 4096) + 123);
        using var file = BackupImageFile.Open(image);
        using var source = new BackupImageSource(file);
        long sector5 = (chunk * Chunk) + (5 * 4096);
        var buffer = new byte[4096];
        var e = Assert.Throws<InvalidDataException>(() => source.Read(sector5, buffer));
        Assert.Contains($"chunk {chunk} (disk offset {chunk * Chunk})", e.Message);
        Assert.Contains($"checksum mismatch in sector 5 (disk offset {sector5})", e.Message);
        Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, "nothing of the damaged sector may be handed on");
        Assert.Throws<InvalidDataException>(() => source.Read(sector5 - 10, new byte[20])); // an unaligned read across it
        Assert.Throws<InvalidDataException>(() => source.Read(chunk * Chunk, new byte[Chunk])); // the whole chunk
        foreach (int s in new[] { 0, 4, 6, 15 })
        {
            long at = (chunk * Chunk) + (s * 4096);
            source.Read(at, buffer);
            Assert.True(_bytes.AsSpan((int)at, 4096).SequenceEqual(buffer), $"sector {s}");
        }

        using var chain = BackupChain.Open(image);
        var bad = new List<BadChunk>();
        Assert.False(ChainVerifier.Verify(chain, onBadChunk: bad.Add).IsValid);
        Assert.Equal(chunk, Assert.Single(bad).ChunkIndex);
    }

    [Fact]
    public void ADamagedTableEntryFailsItsSector_NeverServesWrongBytes()
    {
        string image = Backup("raw.bfi", ChunkCodec.None);
        var (chunk, payload) = DataChunk(image);
        ImageTestKit.FlipBit(image, payload + Chunk + (9 * 4) + 2); // the checksum of sector 9
        using var file = BackupImageFile.Open(image);
        using var source = new BackupImageSource(file);
        var e = Assert.Throws<InvalidDataException>(() => source.Read((chunk * Chunk) + (9 * 4096), new byte[4096]));
        Assert.Contains("checksum mismatch in sector 9", e.Message);
        Assert.Throws<InvalidDataException>(() => source.Read(chunk * Chunk, new byte[Chunk])); // the payload CRC covers the table
        var buffer = new byte[4096];
        source.Read((chunk * Chunk) + (8 * 4096), buffer);
        Assert.True(_bytes.AsSpan((int)((chunk * Chunk) + (8 * 4096)), 4096).SequenceEqual(buffer));
    }

    [Fact]
    public void MergingKeepsRawPayloadsWithOneFreshTable()
    {
        string full = Backup("full.bfi", ChunkCodec.None);
        var changed = (byte[])_bytes.Clone();
        new Random(3).NextBytes(changed.AsSpan(3 * Chunk, 2 * Chunk));
        string disk2 = _dir["disk2.raw"];
        File.WriteAllBytes(disk2, changed);
        string inc = _dir["inc.bfi"];
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(disk2, inc, new BackupOptions { Codec = ChunkCodec.None, Parent = parent });
        }

        string merged = _dir["merged.bfi"];
        using (var chain = BackupChain.Open(inc))
        {
            Assert.True(ImageFolder.Fold(chain, 2, merged, passphrase: null, replace: false).IsFull);
        }

        using var result = BackupImageFile.Open(merged);
        for (long c = 0; c < result.ChunkCount; c++)
        {
            var e = result.GetEntry(c);
            Assert.True(e.Kind != ChunkKind.Data || (e.Flags == ChunkFlags.SectorChecksums && e.StoredLength == result.ChunkLength(c) + (4 * ((result.ChunkLength(c) + 4095) / 4096))), $"chunk {c}: {e.Flags}, {e.StoredLength} bytes");
        }

        using var source = new BackupImageSource(result);
        ImageTestKit.AssertSameContent(disk2, source);
        var part = new byte[4096];
        source.Read((3 * Chunk) + 8192, part);
        Assert.True(changed.AsSpan((3 * Chunk) + 8192, 4096).SequenceEqual(part));
    }

    [Fact]
    public void ARemoteObjectReadsWholePayloadsInOneRequest_AndStillChecksThem()
    {
        string image = Backup("raw.bfi", ChunkCodec.None);
        var (chunk, payload) = DataChunk(image);
        var counting = new RequestCountingObject(LocalImageObject.Open(image));
        using (var remote = BackupImageFile.Open(counting))
        using (var source = new BackupImageSource(remote))
        {
            Assert.False(source.ReadsPartCheaply((chunk * Chunk) + 4096, 4096));
            Assert.False(source.ReadsPartCheaply(chunk * Chunk, remote.ChunkLength(chunk))); // whole: a request, not a copy
            var part = new byte[4096];
            int before = counting.Requests;
            source.Read((chunk * Chunk) + 4096, part);
            Assert.Equal(1, counting.Requests - before); // the whole payload, plaintext and table, in one request
            Assert.True(_bytes.AsSpan((int)((chunk * Chunk) + 4096), 4096).SequenceEqual(part));
        }

        ImageTestKit.FlipBit(image, payload + Chunk + 1); // the table: only the whole-payload CRC sees it from afar
        using var damaged = BackupImageFile.Open(new RequestCountingObject(LocalImageObject.Open(image)));
        using var damagedSource = new BackupImageSource(damaged);
        Assert.Contains("checksum mismatch", Assert.Throws<InvalidDataException>(() => damagedSource.Read((chunk * Chunk) + 4096, new byte[4096])).Message);
    }

    private string Backup(string name, ChunkCodec codec)
    {
        string image = _dir[name];
        BackupWriter.Backup(_disk, image, new BackupOptions { Codec = codec });
        return image;
    }

    /// <summary>A local file that behaves as a remote object: small reads are not cheap; counts the reads of payloads.</summary>
    private sealed class RequestCountingObject(IImageObject inner) : IImageObject
    {
        private int _requests;

        public int Requests => Volatile.Read(ref _requests);

        public string Location => inner.Location;

        public long Length => inner.Length;

        public ImageFileStatus? LocalStatus => null;

        public bool SmallReadsAreCheap => false;

        public void ReadExactly(long offset, Span<byte> destination)
        {
            Interlocked.Increment(ref _requests);
            inner.ReadExactly(offset, destination);
        }

        public bool Refetch(long offset, long length) => false;

        public void Prefetch(long offset, long length)
        {
        }

        public void Dispose() => inner.Dispose();
    }

    private static (long Chunk, long PayloadOffset) DataChunk(string image)
    {
        using var file = BackupImageFile.Open(image);
        long chunk = Enumerable.Range(2, (int)file.ChunkCount - 3).First(c => file.GetEntry(c).Kind == ChunkKind.Data && file.ChunkLength(c) == Chunk);
        return (chunk, file.GetEntry(chunk).PayloadOffset);
    }
}
