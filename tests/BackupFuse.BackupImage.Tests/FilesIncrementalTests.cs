using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

public sealed class FilesIncrementalTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-files-inc");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ChainOfThreeStoresOnlyChangedContentAndEveryPointReadsComplete()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src);
        FileImageWriter.BackupDirectory(src, _dir["p0.bfi"], new BackupOptions());
        Snapshot(src, "s0");

        // Point 1: a changed file (same size), a grown file, a new file, a deleted file, a touched (metadata-only) file,
        // a new directory, a mode change.
        var rng = new Random(11);
        FilesTestKit.WriteRandom(Path.Combine(src, "docs", "page.bin"), 4096, rng);
        File.AppendAllText(Path.Combine(src, "one"), "grown");
        FilesTestKit.WriteRandom(Path.Combine(src, "new.bin"), 50_000, rng);
        File.Delete(Path.Combine(src, "docs", "odd.bin"));
        Directory.CreateDirectory(Path.Combine(src, "added", "sub"));
        File.WriteAllText(Path.Combine(src, "added", "sub", "leaf.txt"), "leaf");
        ExternalTool.Check("chmod", "600", Path.Combine(src, "docs", "deep", "mid.bin"));
        FilesTestKit.SetAllTimes(src, FilesTestKit.BaseTime);
        FilesTestKit.SetTime(Path.Combine(src, "docs", "page.bin"), FilesTestKit.BaseTime + 10);
        FilesTestKit.SetTime(Path.Combine(src, "one"), FilesTestKit.BaseTime + 10);
        FilesTestKit.SetTime(Path.Combine(src, "big.bin"), FilesTestKit.BaseTime + 20); // touched: same content, new mtime
        FileBackupResult r1;
        using (var parent = BackupChain.Open(_dir["p0.bfi"]))
        {
            r1 = FileImageWriter.BackupDirectory(src, _dir["p1.bfi"], new BackupOptions { Parent = parent });
        }

        Snapshot(src, "s1");

        // Only the changed and new content (4096 + 6 + 50,000 + 4 bytes, all but 6 of them random) and the catalog are
        // stored; storing the 2 MiB touched file again would be visible.
        Assert.Equal(4096 + 6 + 50_000 + 4, r1.Fields.NewContentBytes);
        Assert.True(r1.Image.PayloadBytes < 120_000, $"incremental stores {r1.Image.PayloadBytes} payload bytes");
        Assert.Equal(FilesTestKit.DataOffsetOf(_dir["p0.bfi"], "big.bin"), FilesTestKit.DataOffsetOf(_dir["p1.bfi"], "big.bin"));
        Assert.Equal(FilesTestKit.DataOffsetOf(_dir["p0.bfi"], "docs/deep/mid.bin"), FilesTestKit.DataOffsetOf(_dir["p1.bfi"], "docs/deep/mid.bin"));

        // Point 2: replace the big file, delete a directory tree, add more.
        FilesTestKit.WriteRandom(Path.Combine(src, "big.bin"), 300_000, rng);
        Directory.Delete(Path.Combine(src, "Ünïcödé dir"), recursive: true);
        File.WriteAllText(Path.Combine(src, "added", "second.txt"), "second");
        FilesTestKit.SetAllTimes(src, FilesTestKit.BaseTime + 100);
        FileBackupResult r2;
        using (var parent = BackupChain.Open(_dir["p1.bfi"]))
        {
            r2 = FileImageWriter.BackupDirectory(src, _dir["p2.bfi"], new BackupOptions { Parent = parent });
        }

        // Every other file's mtime changed too, but its content did not: only the new content is stored.
        Assert.Equal(300_000 + 6, r2.Fields.NewContentBytes);
        Assert.True(r2.Image.PayloadBytes < 360_000, $"second incremental stores {r2.Image.PayloadBytes} payload bytes");

        FilesTestKit.AssertPointEquals(_dir["p0.bfi"], _dir["s0"]);
        FilesTestKit.AssertPointEquals(_dir["p1.bfi"], _dir["s1"]);
        FilesTestKit.AssertPointEquals(_dir["p2.bfi"], src);
        using var chain = BackupChain.Open(_dir["p2.bfi"]);
        Assert.Equal(3, chain.Layers.Count);
        Assert.True(chain.Layers[0].DiskSize > chain.Layers[1].DiskSize && chain.Layers[1].DiskSize > chain.Layers[2].DiskSize);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void UnchangedTreeGivesAnIncrementalWithOnlyTheCatalog()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 4);
        FileImageWriter.BackupDirectory(src, _dir["full.bfi"], new BackupOptions());
        using var parent = BackupChain.Open(_dir["full.bfi"]);
        var r = FileImageWriter.BackupDirectory(src, _dir["same.bfi"], new BackupOptions { Parent = parent });
        Assert.Equal(0, r.Fields.NewContentBytes);
        Assert.Equal(r.Fields.CatalogOffset, parent.DiskSize); // the parent's stream is whole chunks
        FilesTestKit.AssertPointEquals(_dir["same.bfi"], src);
    }

    [Fact]
    public void TarIncrementalReusesUnchangedFilesAndStoresMtimeChangedOnesAgain()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 6);
        ExternalTool.Check("tar", "cf", _dir["0.tar"], "-C", src, ".");
        using (var tar = File.OpenRead(_dir["0.tar"]))
        {
            FileImageWriter.BackupTar(tar, _dir["t0.bfi"], new BackupOptions());
        }

        Snapshot(src, "s0");
        File.WriteAllText(Path.Combine(src, "added.txt"), "added");
        File.Delete(Path.Combine(src, "one"));
        FilesTestKit.SetAllTimes(src, FilesTestKit.BaseTime);
        FilesTestKit.SetTime(Path.Combine(src, "docs", "odd.bin"), FilesTestKit.BaseTime + 5); // touched: tar input stores it again
        ExternalTool.Check("tar", "cf", _dir["1.tar"], "-C", src, ".");
        FileBackupResult r;
        using (var parent = BackupChain.Open(_dir["t0.bfi"]))
        using (var tar = File.OpenRead(_dir["1.tar"]))
        {
            r = FileImageWriter.BackupTar(tar, _dir["t1.bfi"], new BackupOptions { Parent = parent });
        }

        Assert.Equal(5 + 4095, r.Fields.NewContentBytes);
        Assert.True(r.Image.PayloadBytes < 40_000, $"tar incremental stores {r.Image.PayloadBytes} payload bytes");
        FilesTestKit.AssertPointEquals(_dir["t0.bfi"], _dir["s0"]);
        FilesTestKit.AssertPointEquals(_dir["t1.bfi"], src);
        using var chain = BackupChain.Open(_dir["t1.bfi"]);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void AFileChildWithAStreamShorterThanItsParentIsRefused()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 8);
        FileImageWriter.BackupDirectory(src, _dir["full.bfi"], new BackupOptions());
        using (var parent = BackupChain.Open(_dir["full.bfi"]))
        {
            FileImageWriter.BackupDirectory(src, _dir["child.bfi"], new BackupOptions { Parent = parent });
        }

        long fullSize;
        using (var full = BackupChain.Open(_dir["full.bfi"]))
        {
            fullSize = full.DiskSize;
        }

        // A child claiming a shorter stream than its parent's cannot keep the parent's offsets: refused when opened.
        ImageTestKit.RewriteHeader(_dir["child.bfi"], h => h with { DiskSize = fullSize - 1 });
        var e = Assert.ThrowsAny<Exception>(() => BackupChain.Open(_dir["child.bfi"]));
        Assert.True(e is InvalidDataException && e.Message.Contains("disk size", StringComparison.Ordinal), e.ToString());
    }

    [Fact]
    public void FoldingAFileChainKeepsEveryPointReadable()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 12);
        FileImageWriter.BackupDirectory(src, _dir["p0.bfi"], new BackupOptions());
        Snapshot(src, "s0");
        var rng = new Random(13);
        FilesTestKit.WriteRandom(Path.Combine(src, "n1.bin"), 70_000, rng);
        using (var parent = BackupChain.Open(_dir["p0.bfi"]))
        {
            FileImageWriter.BackupDirectory(src, _dir["p1.bfi"], new BackupOptions { Parent = parent });
        }

        Snapshot(src, "s1");
        FilesTestKit.WriteRandom(Path.Combine(src, "big.bin"), 90_000, rng);
        File.Delete(Path.Combine(src, "one"));
        using (var parent = BackupChain.Open(_dir["p1.bfi"]))
        {
            FileImageWriter.BackupDirectory(src, _dir["p2.bfi"], new BackupOptions { Parent = parent });
        }

        Directory.CreateDirectory(_dir["synthetic"]);
        Directory.CreateDirectory(_dir["folded"]);
        using (var chain = BackupChain.Open(_dir["p2.bfi"]))
        {
            Lifecycle.ImageFolder.Fold(chain, 3, Path.Combine(_dir["synthetic"], "p2.bfi"), passphrase: null, replace: false);
            Lifecycle.ImageFolder.Fold(chain, 2, _dir["p2-on-p0.bfi"], passphrase: null, replace: false);
        }

        FilesTestKit.AssertPointEquals(Path.Combine(_dir["synthetic"], "p2.bfi"), src);
        using (var synthetic = BackupChain.Open(Path.Combine(_dir["synthetic"], "p2.bfi")))
        {
            Assert.Single(synthetic.Layers);
        }

        File.Move(_dir["p2.bfi"], Path.Combine(_dir["folded"], "p2-original.bfi"));
        FilesTestKit.AssertPointEquals(_dir["p2-on-p0.bfi"], src);
        FilesTestKit.AssertPointEquals(_dir["p0.bfi"], _dir["s0"]);
        FilesTestKit.AssertPointEquals(_dir["p1.bfi"], _dir["s1"]);
    }

    private void Snapshot(string src, string name) => ExternalTool.Check("cp", "-a", src, _dir[name]);
}
