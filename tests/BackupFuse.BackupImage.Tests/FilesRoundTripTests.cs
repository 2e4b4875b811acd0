using System.Diagnostics;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

public sealed class FilesRoundTripTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-files");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void DirectoryBacksUpAndReadsBackAsTheSameTree()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src);
        var result = FileImageWriter.BackupDirectory(src, _dir["files.bfi"], new BackupOptions { Codec = ChunkCodec.Deflate, EntriesPerPage = 8 });

        FilesTestKit.AssertPointEquals(_dir["files.bfi"], src);
        using var chain = BackupChain.Open(_dir["files.bfi"]);
        var fields = FileImageFields.Read(chain.Top.Header)!;
        Assert.Equal(result.Fields, fields);
        using var scanned = DirectoryFileTree.Scan(src);
        var entries = Enumerable.Range(0, scanned.Count).Select(scanned.GetEntry).ToList();
        Assert.Equal(entries.Count(e => e.Kind == FileTreeEntryKind.File), fields.Files);
        Assert.Equal(entries.Count(e => e.Kind == FileTreeEntryKind.Directory), fields.Directories);
        Assert.Equal(2, fields.Symlinks);
        Assert.Equal(1, fields.Others);
        Assert.Equal(entries.Sum(e => e.Size), fields.ContentBytes);
        Assert.Equal(0, fields.CatalogOffset % chain.ChunkSize);
        Assert.Equal(0, chain.DiskSize % chain.ChunkSize);
        Assert.True(chain.DiskSize - fields.CatalogOffset - fields.CatalogLength is >= 0 and < BackupOptions.DefaultChunkSize);
        Assert.True(ChainVerifier.Verify(chain).IsValid);

        // Every file starts 4 KiB-aligned, inside the stream, before the catalog.
        using var tree = FileImageTree.Open(chain);
        for (int i = 0; i < tree.Count; i++)
        {
            if (tree.GetEntry(i).Kind == FileTreeEntryKind.File && tree.GetEntry(i).Size > 0)
            {
                Assert.Equal(0, tree.Catalog.DataOffsetOf(i) % FileImageWriter.FileAlignment);
                Assert.True(tree.Catalog.DataOffsetOf(i) + tree.GetEntry(i).Size <= fields.CatalogOffset);
            }
        }
    }

    [Fact]
    public void DirectoryBackupToAForwardOnlyStreamReads()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 5);
        using (var fs = File.Create(_dir["piped.bfi"]))
        {
            FileImageWriter.BackupDirectory(src, new ImageTestKit.ForwardOnlyStream(fs), new BackupOptions { Codec = ChunkCodec.Zstd });
        }

        FilesTestKit.AssertPointEquals(_dir["piped.bfi"], src);
    }

    [Theory]
    [InlineData("gnu")]
    [InlineData("posix")]
    [InlineData("ustar")]
    public void TarStreamFromAPipeGivesTheSameTreeAsTheDirectory(string format)
    {
        Prerequisite.Tool("tar", "tar");
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 7);
        var psi = new ProcessStartInfo("tar") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "c", $"--format={format}", "-C", src, "." })
        {
            psi.ArgumentList.Add(a);
        }

        using (var tar = Process.Start(psi)!)
        {
            FileImageWriter.BackupTar(tar.StandardOutput.BaseStream, _dir["tar.bfi"], new BackupOptions());
            tar.WaitForExit();
            Assert.Equal(0, tar.ExitCode);
        }

        FilesTestKit.AssertPointEquals(_dir["tar.bfi"], src);
        using var chain = BackupChain.Open(_dir["tar.bfi"]);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void TarWithHardLinksSharesTheContent()
    {
        string src = _dir["src"];
        Directory.CreateDirectory(src);
        FilesTestKit.WriteRandom(Path.Combine(src, "a"), 100_000, new Random(3));
        ExternalTool.Check("ln", Path.Combine(src, "a"), Path.Combine(src, "b"));
        FilesTestKit.SetAllTimes(src, FilesTestKit.BaseTime);
        ExternalTool.Check("tar", "cf", _dir["h.tar"], "-C", src, ".");
        using (var tar = File.OpenRead(_dir["h.tar"]))
        {
            FileImageWriter.BackupTar(tar, _dir["h.bfi"], new BackupOptions());
        }

        FilesTestKit.AssertPointEquals(_dir["h.bfi"], src);
        Assert.Equal(FilesTestKit.DataOffsetOf(_dir["h.bfi"], "a"), FilesTestKit.DataOffsetOf(_dir["h.bfi"], "b"));
    }

    [Fact]
    public void EncryptedFileImageRoundTripsAndHidesNamesAndContent()
    {
        string src = _dir["src"];
        FilesTestKit.MakeTree(src, seed: 9);
        var pass = PassphraseSource.FromEnvironment("BFI_FILES_TEST_PASS");
        Environment.SetEnvironmentVariable("BFI_FILES_TEST_PASS", "a files passphrase");
        FileImageWriter.BackupDirectory(src, _dir["enc.bfi"], new BackupOptions { Encrypt = true, Passphrase = pass, KdfIterations = BackupOptions.MinKdfIterations });

        byte[] bytes = File.ReadAllBytes(_dir["enc.bfi"]);
        Assert.True(bytes.AsSpan().IndexOf("compresses well"u8) < 0, "file content visible in the encrypted image");
        Assert.True(bytes.AsSpan().IndexOf("link-to-note"u8) < 0 && bytes.AsSpan().IndexOf("BFCATLG1"u8) < 0, "catalog visible in the encrypted image");
        FilesTestKit.AssertPointEquals(_dir["enc.bfi"], src, pass);
        Assert.Throws<PassphraseException>(() => BackupChain.Open(_dir["enc.bfi"]));
    }

    [Fact]
    public void ABlockImageIsNotAFileTreeAndChainsDoNotMix()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 1 << 20, seed: 2);
        BackupWriter.Backup(disk, _dir["disk.bfi"], new BackupOptions());
        string src = _dir["src"];
        FilesTestKit.MakeTree(src);
        FileImageWriter.BackupDirectory(src, _dir["files.bfi"], new BackupOptions());

        using (var block = BackupChain.Open(_dir["disk.bfi"]))
        {
            var e = Assert.Throws<InvalidDataException>(() => FileImageTree.Open(block));
            Assert.Contains("not a file-level backup", e.Message);
            var e2 = Assert.Throws<InvalidDataException>(() => FileImageWriter.BackupDirectory(src, _dir["x.bfi"], new BackupOptions { Parent = block }));
            Assert.Contains("file-level parent", e2.Message);
        }

        using var files = BackupChain.Open(_dir["files.bfi"]);
        var e3 = Assert.Throws<InvalidDataException>(() => BackupWriter.Backup(disk, _dir["y.bfi"], new BackupOptions { Parent = files }));
        Assert.Contains("file-level backup", e3.Message);
        Assert.False(File.Exists(_dir["x.bfi"]) || File.Exists(_dir["y.bfi"]));
    }
}
