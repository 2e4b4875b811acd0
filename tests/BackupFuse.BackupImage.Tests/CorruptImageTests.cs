using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>Bad input gets a clear error naming the file and the problem; never a crash, never wrong bytes.</summary>
public sealed class CorruptImageTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-bad");
    private readonly string _disk;
    private readonly string _image;

    public CorruptImageTests()
    {
        _disk = _dir["disk.raw"];
        _image = _dir["img.bfi"];
        MixedDataGenerator.WriteFile(_disk, 4 << 20, seed: 21);
        BackupWriter.Backup(_disk, _image, new BackupOptions { EntriesPerPage = 16 });
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void TruncatedImageIsRejected()
    {
        foreach (long cut in new long[] { 1, 100, 5000, new FileInfo(_image).Length / 2 })
        {
            string copy = _dir[$"cut{cut}.bfi"];
            File.Copy(_image, copy);
            using (var fs = new FileStream(copy, FileMode.Open))
            {
                fs.SetLength(fs.Length - cut);
            }

            var e = Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(copy));
            Assert.Contains(copy, e.Message);
            Assert.Contains("truncated", e.Message);
        }
    }

    [Fact]
    public void FlippedBitInAChunkNamesTheChunkOnReadAndVerify()
    {
        long chunk;
        long payloadOffset;
        using (var image = BackupImageFile.Open(_image))
        {
            chunk = Enumerable.Range(0, (int)image.ChunkCount).First(c => image.GetEntry(c).Kind == ChunkKind.Data && c > 5);
            payloadOffset = image.GetEntry(chunk).PayloadOffset;
        }

        ImageTestKit.FlipBit(_image, payloadOffset + 10);
        using var chain = BackupChain.Open(_image);
        using var source = chain.CreateSource();
        var buffer = new byte[4096];
        var e = Assert.Throws<InvalidDataException>(() => source.Read((chunk * 65536) + 100, buffer));
        Assert.Contains(_image, e.Message);
        Assert.Contains($"chunk {chunk} (disk offset {chunk * 65536})", e.Message);
        Assert.Contains("checksum mismatch", e.Message);

        // Chunks before it still read correctly.
        source.Read(0, buffer);

        var bad = new List<BadChunk>();
        var result = ChainVerifier.Verify(chain, onBadChunk: bad.Add);
        Assert.False(result.IsValid);
        var only = Assert.Single(bad);
        Assert.Equal((_image, chunk, chunk * 65536), (only.ImagePath, only.ChunkIndex, only.DiskOffset));
        Assert.True(result.ChunksChecked > 10, "verification must go on after a bad chunk");
    }

    [Fact]
    public void FlippedBitInAnIndexPageIsReportedAndVerifyContinues()
    {
        IndexDirectoryEntry page;
        using (var image = BackupImageFile.Open(_image))
        {
            Assert.True(image.IndexPageCount >= 3);
            page = image.IndexDirectory[1];
        }

        ImageTestKit.FlipBit(_image, page.Offset + 30);
        using var chain = BackupChain.Open(_image); // directory is intact; pages load lazily
        using var source = chain.CreateSource();
        var buffer = new byte[4096];
        long firstChunk = page.PageNumber * 16L;
        var e = Assert.Throws<InvalidDataException>(() => source.Read(firstChunk * 65536, buffer));
        Assert.Contains($"index page {page.PageNumber}", e.Message);
        Assert.Contains(_image, e.Message);

        var result = ChainVerifier.Verify(chain);
        var bad = Assert.Single(result.BadChunks);
        Assert.Equal(firstChunk, bad.ChunkIndex);
        Assert.True(result.ChunksChecked > 16);
    }

    [Fact]
    public void FlippedBitInTheDirectoryIsRejectedOnOpen()
    {
        long dirOffset;
        using (var image = BackupImageFile.Open(_image))
        {
            dirOffset = image.Trailer.DirectoryOffset;
        }

        ImageTestKit.FlipBit(_image, dirOffset + 9);
        var e = Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_image));
        Assert.Contains("index directory checksum mismatch", e.Message);
    }

    [Theory]
    [InlineData(20, "header checksum mismatch")]
    [InlineData(50, "header checksum mismatch")]
    [InlineData(0, "wrong magic")]
    public void DamagedHeaderIsRejected(long offset, string expected)
    {
        ImageTestKit.FlipBit(_image, offset);
        var e = Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_image));
        Assert.Contains(expected, e.Message);
        Assert.Contains(_image, e.Message);
        Assert.Empty(new ImageCatalog([_dir.Path]).Entries);
        Assert.Single(new ImageCatalog([_dir.Path]).Problems);
    }

    [Theory]
    [InlineData(-128, "no valid trailer")]
    [InlineData(-100, "trailer checksum mismatch")]
    [InlineData(-60, "trailer checksum mismatch")]
    public void DamagedTrailerIsRejected(long fromEnd, string expected)
    {
        ImageTestKit.FlipBit(_image, new FileInfo(_image).Length + fromEnd);
        var e = Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_image));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void NotAnImageIsRejected()
    {
        File.WriteAllText(_dir["text.bfi"], new string('x', 5000));
        Assert.Contains("wrong magic", Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_dir["text.bfi"])).Message);
        File.WriteAllText(_dir["short.bfi"], "BFIMG");
        Assert.Contains("shorter than", Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_dir["short.bfi"])).Message);
    }

    [Fact]
    public void UnknownMajorVersionIsRejectedWithAClearMessage()
    {
        ImageTestKit.RewriteHeader(_image, h => h with { MajorVersion = 2, MinorVersion = 7 });
        var e = Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_image));
        Assert.Contains("unsupported image format version 2.7", e.Message);
    }

    [Fact]
    public void NewerMinorVersionIsAccepted()
    {
        ImageTestKit.RewriteHeader(_image, h => h with { MinorVersion = 9 });
        using var image = BackupImageFile.Open(_image);
        Assert.Equal("1.9", image.GetInfo().FormatVersion);
    }

    [Fact]
    public void HeaderFieldsOutOfRangeAreRejected()
    {
        ImageTestKit.RewriteHeader(_image, h => h with { ChunkSize = 65535 });
        Assert.Contains("chunk size 65535", Assert.Throws<InvalidDataException>(() => BackupImageFile.Open(_image)).Message);
    }

    [Fact]
    public void MissingParentNamesTheIdAndTheDirectories()
    {
        string other = Directory.CreateDirectory(_dir["elsewhere"]).FullName;
        string inc = Path.Combine(other, "inc.bfi");
        MixedDataGenerator.ScatterChanges(_disk, 3, 5000, seed: 1);
        Guid parentId;
        using (var parent = BackupChain.Open(_image))
        {
            parentId = parent.Top.Id;
            BackupWriter.Backup(_disk, inc, new BackupOptions { Parent = parent });
        }

        var e = Assert.Throws<FileNotFoundException>(() => BackupChain.Open(inc, new ImageCatalog([other])));
        Assert.Contains(parentId.ToString(), e.Message);
        Assert.Contains(other, e.Message);

        // Found by identity once the right directory is searched, whatever the file is called.
        File.Move(_image, _dir["renamed.bfi"]);
        using var chain = BackupChain.Open(inc, new ImageCatalog([other, _dir.Path]));
        Assert.Equal(2, chain.Layers.Count);
        Assert.Equal(_dir["renamed.bfi"], chain.Layers[1].Path);
    }

    [Fact]
    public void ParentWithTheWrongIdentityIsRejected()
    {
        string inc = _dir["inc.bfi"];
        using (var parent = BackupChain.Open(_image))
        {
            BackupWriter.Backup(_disk, inc, new BackupOptions { Parent = parent });
        }

        var catalog = new ImageCatalog([_dir.Path]);
        Assert.Equal(2, catalog.Entries.Count); // scanned now; the parent file is replaced afterwards
        File.Delete(_image);
        BackupWriter.Backup(_disk, _image, new BackupOptions());
        // The catalog notices that the file it scanned was replaced and rescans: the parent's identity is nowhere now.
        var e = Assert.Throws<FileNotFoundException>(() => BackupChain.Open(inc, catalog));
        Assert.Contains("was not found", e.Message);
    }

    [Fact]
    public void CycleInAChainIsRejected()
    {
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        BackupWriter.Backup(_disk, _dir["a.bfi"], new BackupOptions { ImageId = a });
        BackupWriter.Backup(_disk, _dir["b.bfi"], new BackupOptions { ImageId = b });
        ImageTestKit.RewriteHeader(_dir["a.bfi"], h => h with { ParentId = b });
        ImageTestKit.RewriteHeader(_dir["b.bfi"], h => h with { ParentId = a });
        var e = Assert.Throws<InvalidDataException>(() => BackupChain.Open(_dir["a.bfi"], new ImageCatalog([_dir.Path])));
        Assert.Contains("cycle", e.Message);
        Assert.Contains(a.ToString(), e.Message);
        Assert.Contains(b.ToString(), e.Message);
    }

    [Fact]
    public void ParentWithAnotherDiskSizeIsRejected()
    {
        string small = _dir["small.raw"];
        MixedDataGenerator.WriteFile(small, 2 << 20, seed: 3);
        var smallId = BackupWriter.Backup(small, _dir["small.bfi"], new BackupOptions()).ImageId;
        ImageTestKit.RewriteHeader(_image, h => h with { ParentId = smallId });
        var e = Assert.Throws<InvalidDataException>(() => BackupChain.Open(_image));
        Assert.Contains("disk size", e.Message);

        using var parent = BackupChain.Open(_dir["small.bfi"]);
        var w = Assert.Throws<InvalidDataException>(() => BackupWriter.Backup(_disk, _dir["x.bfi"], new BackupOptions { Parent = parent }));
        Assert.Contains($"is a disk of {4 << 20} bytes but the parent image {_dir["small.bfi"]} is a disk of {2 << 20} bytes", w.Message);
    }

    [Fact]
    public void UnreadableSourceFailsAndLeavesNoImage()
    {
        var e = Assert.ThrowsAny<IOException>(() => BackupWriter.Backup(_dir["no-such-disk"], _dir["out.bfi"], new BackupOptions()));
        Assert.Contains(_dir["no-such-disk"], e.Message);
        Assert.False(File.Exists(_dir["out.bfi"]));

        // A source that fails in the middle of the backup.
        var failing = new FaultInjectingFilter(new BackupFuse.Core.FileBlockSource(_disk), 3 << 20, 4096);
        Assert.Throws<InvalidDataException>(() => BackupWriter.Backup(failing, _dir["out.bfi"], new BackupOptions()));
        Assert.False(File.Exists(_dir["out.bfi"]));
        Assert.False(File.Exists(_dir["out.bfi.partial"]));
    }
}
