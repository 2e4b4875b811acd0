using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// ImageFolder on chains whose layers differ in ways a merge must absorb: an uncompressed incremental over a Deflate
/// full, other index page sizes per layer, Zero entries, and a header with bytes a later minor version may use.
/// </summary>
public sealed class MergeFoldTests : IDisposable
{
    private const int Chunk = 4096;
    private readonly TempDirectory _dir = new("bffold");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void FoldsMixedCodecsPageSizesAndZerosIntoTheSameBytes()
    {
        var rng = new Random(9);
        var disk = new byte[300 * Chunk + 1000]; // a short last chunk
        rng.NextBytes(disk.AsSpan(0, 100 * Chunk));
        Array.Fill(disk, (byte)'a', 150 * Chunk, 40 * Chunk); // compressible
        string full = _dir["full.bfi"];
        string raw = _dir["disk.raw"];
        File.WriteAllBytes(raw, disk);
        BackupWriter.Backup(raw, full, new BackupOptions { ChunkSize = Chunk, EntriesPerPage = 16 });

        // Incremental 1, uncompressed, other page size: some new data, a range zeroed (Zero entries).
        rng.NextBytes(disk.AsSpan(200 * Chunk, 7 * Chunk));
        Array.Clear(disk, 10 * Chunk, 5 * Chunk);
        File.WriteAllBytes(raw, disk);
        string inc1 = _dir["inc1.bfi"];
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(raw, inc1, new BackupOptions { Parent = parent, Codec = ChunkCodec.None, EntriesPerPage = 64 });
        }

        // Incremental 2: data where incremental 1 wrote zeros, and in the last (short) chunk.
        disk[11 * Chunk] = 7;
        disk[^1] = 9;
        File.WriteAllBytes(raw, disk);
        string inc2 = _dir["inc2.bfi"];
        using (var parent = BackupChain.Open(inc1))
        {
            BackupWriter.Backup(raw, inc2, new BackupOptions { Parent = parent, Codec = ChunkCodec.None, EntriesPerPage = 64 });
        }

        // A byte a later minor version might use (at the start of the reserved area) must survive the merge.
        ImageTestKit.RewriteHeader(inc2, h => h with { Reserved = [.. h.Reserved.Select((b, i) => i == 0 ? (byte)0x5C : b)] });
        using (var check = BackupChain.Open(inc2))
        {
            // The rewrite changed inc2's own bytes, not its binding to inc1: the chain still opens.
            Assert.Equal(3, check.Layers.Count);
        }

        string intoParent = _dir["inc2-into-inc1.bfi"];
        string synthetic = _dir["inc2-full.bfi"];
        using (var chain = BackupChain.Open(inc2))
        {
            var r1 = ImageFolder.Fold(chain, 2, intoParent, passphrase: null, replace: false);
            Assert.False(r1.IsFull);
            var r2 = ImageFolder.Fold(chain, 3, synthetic, passphrase: null, replace: false);
            Assert.True(r2.IsFull);
        }

        foreach (var merged in new[] { intoParent, synthetic })
        {
            // Both files serve inc2's state: open each through a catalog holding only it and inc2's ancestors.
            using var chain = BackupChain.Open(merged);
            using var source = chain.CreateSource();
            ImageTestKit.AssertSameContent(raw, source);
            Assert.Equal(0x5C, chain.Top.Header.Reserved[0]);
            // The synthetic full holds the full's Deflate payloads: its header must say Deflate, though the top's says none.
            Assert.Equal(merged == synthetic ? ChunkCodec.Deflate : ChunkCodec.None, chain.Top.Header.Codec);
            Assert.True(ChainVerifier.Verify(chain).IsValid);
        }

        using (var s = BackupChain.Open(synthetic))
        {
            Assert.Single(s.Layers);
        }
    }

    [Fact]
    public void FoldsAnAllZeroDiskAndLeavesNoTemporaryFile()
    {
        string raw = _dir["zeros.raw"];
        File.WriteAllBytes(raw, new byte[64 * Chunk]);
        string full = _dir["zeros-full.bfi"];
        BackupWriter.Backup(raw, full, new BackupOptions { ChunkSize = Chunk });
        string inc = _dir["zeros-inc.bfi"];
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(raw, inc, new BackupOptions { Parent = parent });
        }

        string merged = _dir["zeros-merged.bfi"];
        FoldResult r;
        using (var chain = BackupChain.Open(inc))
        {
            r = ImageFolder.Fold(chain, chain.Layers.Count, merged, null, replace: false);
        }

        Assert.True(r.IsFull);
        Assert.Equal(0, r.DataChunks);
        using var result = BackupChain.Open(merged);
        Assert.Equal(BackupImageFile.ReadHeader(inc).ImageId, result.Top.Id);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(merged)!, "*.partial"));
    }
}
