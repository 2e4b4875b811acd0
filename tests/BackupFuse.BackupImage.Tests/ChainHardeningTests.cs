using System.Text;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// Issue 10, writer side: an incremental inherits its chain's encryption, and it is bound to its parent's content so
/// a different image carrying the parent's id is refused.
/// </summary>
public sealed class ChainHardeningTests : IDisposable
{
    private const string Secret = "issue ten passphrase";
    private readonly TempDirectory _dir = new("bfi-harden");

    public void Dispose() => _dir.Dispose();

    /// <summary>A 1 MiB run of a distinctive text (each 4 KiB line numbered, so no two chunks are equal).</summary>
    private static byte[] Marker(string text)
    {
        var sb = new StringBuilder();
        for (int i = 0; sb.Length < 1 << 20; i++)
        {
            sb.Append(text).Append(' ').Append(i).Append('\n');
        }

        return Encoding.ASCII.GetBytes(sb.ToString())[..(1 << 20)];
    }

    private static void WriteAt(string path, long offset, byte[] data)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Position = offset;
        fs.Write(data);
    }

    private static BackupOptions Options(PassphraseSource? p = null, BackupChain? parent = null, bool encrypt = false) =>
        new() { Encrypt = encrypt, Passphrase = p, KdfIterations = BackupOptions.MinKdfIterations, Parent = parent, EntriesPerPage = 32, Codec = ChunkCodec.None };

    [Fact]
    public void IncrementalOfAnEncryptedChainIsEncryptedWithoutBeingAsked()
    {
        var pass = PassphraseSource.FromString(Secret);
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 4 << 20, seed: 101);
        BackupWriter.Backup(disk, _dir["full.bfi"], Options(pass, encrypt: true));
        byte[] marker = Marker("SECRET-PAYROLL-ROW");
        WriteAt(disk, 1 << 20, marker);
        using (var parent = BackupChain.Open(_dir["full.bfi"], passphrase: pass))
        {
            BackupWriter.Backup(disk, _dir["inc.bfi"], Options(pass, parent)); // no Encrypt, uncompressed
        }

        byte[] image = File.ReadAllBytes(_dir["inc.bfi"]);
        Assert.True(image.AsSpan().IndexOf("SECRET-PAYROLL-ROW"u8) < 0, "the new data is in plain text in the incremental");
        using var chain = BackupChain.Open(_dir["inc.bfi"], passphrase: pass);
        Assert.True(chain.Top.IsEncrypted);
        Assert.True(chain.Top.GetInfo().IsEncrypted);
        Assert.Equal(chain.Layers[1].Header.KdfSalt, chain.Top.Header.KdfSalt);
        Assert.Equal(chain.Layers[1].Header.KdfIterations, chain.Top.Header.KdfIterations);
        Assert.True(chain.Top.Trailer.DataChunks >= 16, "the changed chunks were not stored");
        using var source = chain.CreateSource();
        ImageTestKit.AssertSameContent(disk, source);
    }

    [Fact]
    public void NoEncryptOrAMissingOrOtherPassphraseOverAnEncryptedChainIsRefusedAndLeavesNoFile()
    {
        var pass = PassphraseSource.FromString(Secret);
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 2 << 20, seed: 102);
        BackupWriter.Backup(disk, _dir["full.bfi"], Options(pass, encrypt: true));
        using var parent = BackupChain.Open(_dir["full.bfi"], passphrase: pass);

        var refused = Assert.Throws<ArgumentException>(() => BackupWriter.Backup(disk, _dir["plain.bfi"], Options(pass, parent) with { NoEncrypt = true }));
        Assert.Contains("the parent chain is encrypted", refused.Message);
        Assert.Contains(_dir["full.bfi"], refused.Message);

        var noPass = Assert.Throws<ArgumentException>(() => BackupWriter.Backup(disk, _dir["nopass.bfi"], Options(null, parent)));
        Assert.Contains("a passphrase is needed", noPass.Message);
        var otherPass = Assert.Throws<PassphraseException>(() => BackupWriter.Backup(disk, _dir["other.bfi"], Options(PassphraseSource.FromString("another one"), parent)));
        Assert.Equal($"wrong passphrase for {_dir["full.bfi"]} (from passphrase given by the program)", otherPass.Message);
        Assert.False(File.Exists(_dir["plain.bfi"]) || File.Exists(_dir["plain.bfi.partial"]) || File.Exists(_dir["nopass.bfi"]) || File.Exists(_dir["other.bfi"]));
    }

    [Fact]
    public void EncryptOverAnUnencryptedParentStartsANewKeyThatLaterIncrementalsInherit()
    {
        var pass = PassphraseSource.FromString(Secret);
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 2 << 20, seed: 103);
        BackupWriter.Backup(disk, _dir["full.bfi"], Options());
        WriteAt(disk, 0, Marker("FIRST-CHANGE"));
        using (var full = BackupChain.Open(_dir["full.bfi"]))
        {
            BackupWriter.Backup(disk, _dir["inc1.bfi"], Options(pass, full, encrypt: true));
        }

        WriteAt(disk, 1 << 20, Marker("SECOND-CHANGE"));
        using (var inc1 = BackupChain.Open(_dir["inc1.bfi"], passphrase: pass))
        {
            BackupWriter.Backup(disk, _dir["inc2.bfi"], Options(pass, inc1));
        }

        Assert.True(File.ReadAllBytes(_dir["inc2.bfi"]).AsSpan().IndexOf("SECOND-CHANGE"u8) < 0);
        using var chain = BackupChain.Open(_dir["inc2.bfi"], passphrase: pass);
        Assert.Equal([true, true, false], chain.Layers.Select(l => l.IsEncrypted));
        Assert.Equal(chain.Layers[1].Header.KdfSalt, chain.Layers[0].Header.KdfSalt);
        using var source = chain.CreateSource();
        ImageTestKit.AssertSameContent(disk, source);
    }

    [Fact]
    public void ParentWithTheRightIdButOtherContentIsRefused()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 2 << 20, seed: 104);
        var a = BackupWriter.Backup(disk, _dir["a.bfi"], Options());
        string other = _dir["other.raw"];
        MixedDataGenerator.WriteFile(other, 2 << 20, seed: 105);
        BackupWriter.Backup(other, _dir["b.bfi"], Options());
        WriteAt(disk, 0, Marker("CHANGE"));
        using (var parent = BackupChain.Open(_dir["a.bfi"]))
        {
            BackupWriter.Backup(disk, _dir["c.bfi"], Options(null, parent));
        }

        using (var good = BackupChain.Open(_dir["c.bfi"]))
        {
            Assert.True(good.Top.GetInfo().ParentBound);
        }

        // B made to carry A's identity (header and trailer, checksums fixed), put where A is expected.
        RewriteIdentity(_dir["b.bfi"], a.ImageId);
        File.Move(_dir["a.bfi"], _dir["a.bfi.away"]);
        var e = Assert.Throws<InvalidDataException>(() => BackupChain.Open(_dir["c.bfi"]));
        Assert.Equal($"{_dir["c.bfi"]}'s parent {_dir["b.bfi"]} is not the image {_dir["c.bfi"]} was made from (content differs)", e.Message);

        // The real parent back: the chain opens again.
        File.Delete(_dir["b.bfi"]);
        File.Move(_dir["a.bfi.away"], _dir["a.bfi"]);
        using var chain = BackupChain.Open(_dir["c.bfi"]);
        using var source = chain.CreateSource();
        ImageTestKit.AssertSameContent(disk, source);
    }

    [Fact]
    public void BindingCoversTheWholeParentChainAndOlderImagesWithoutItStillOpen()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 2 << 20, seed: 106);
        BackupWriter.Backup(disk, _dir["a.bfi"], Options());
        using (var parent = BackupChain.Open(_dir["a.bfi"]))
        {
            WriteAt(disk, 0, Marker("ONE"));
            BackupWriter.Backup(disk, _dir["b.bfi"], Options(null, parent));
        }

        // An image as version 1.0 wrote it: no flag, no binding. It opens, and says it is not bound.
        ImageTestKit.RewriteHeader(_dir["b.bfi"], h => h with { MinorVersion = 0, Flags = ImageHeaderFlags.None, ParentBinding = new byte[ParentBinding.Size] });
        using (var old = BackupChain.Open(_dir["b.bfi"]))
        {
            Assert.False(old.Top.GetInfo().ParentBound);
            Assert.Equal("1.0", old.Top.GetInfo().FormatVersion);
        }

        // The binding covers every byte of the parent's header, reserved ones included: a child of B, then one
        // reserved byte of B's header edited (CRC fixed) -> the child refuses B.
        using (var parent = BackupChain.Open(_dir["b.bfi"]))
        {
            WriteAt(disk, 1 << 20, Marker("TWO"));
            BackupWriter.Backup(disk, _dir["c.bfi"], Options(null, parent));
        }

        var reserved = new byte[332];
        reserved[100] = 1;
        ImageTestKit.RewriteHeader(_dir["b.bfi"], h => h with { Reserved = reserved });
        var e = Assert.Throws<InvalidDataException>(() => BackupChain.Open(_dir["c.bfi"]));
        Assert.Contains("is not the image", e.Message);
    }

    [Fact]
    public void HeaderAndTrailerKeepUnknownBytesSoTheyReserializeExactly()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 1 << 20, seed: 107);
        BackupWriter.Backup(disk, _dir["a.bfi"], Options());
        byte[] file = File.ReadAllBytes(_dir["a.bfi"]);
        byte[] h = file[..ImageHeader.Size];
        h[300] = 0xAB; // reserved
        h[75] |= 0x80; // an unknown flag bit
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(508), Crc32C.Compute(h.AsSpan(0, 508)));
        var header = ImageHeader.Parse(h, "a");
        var again = new byte[ImageHeader.Size];
        header.WriteTo(again);
        Assert.Equal(h, again);

        byte[] t = file[^ImageTrailer.Size..];
        t[100] = 0xCD;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(124), Crc32C.Compute(t.AsSpan(0, 124)));
        var trailer = ImageTrailer.Parse(t, header, file.Length, "a");
        var tagain = new byte[ImageTrailer.Size];
        trailer.WriteTo(tagain);
        Assert.Equal(t, tagain);
    }

    /// <summary>Gives the image another identity in its header and trailer, with valid checksums.</summary>
    private static void RewriteIdentity(string path, Guid id)
    {
        ImageTestKit.RewriteHeader(path, h => h with { ImageId = id });
        byte[] file = File.ReadAllBytes(path);
        var header = ImageHeader.Parse(file.AsSpan(0, ImageHeader.Size), path);
        var trailer = ImageTrailer.Parse(file.AsSpan(file.Length - ImageTrailer.Size), header with { ImageId = new Guid(file.AsSpan(file.Length - ImageTrailer.Size + 8, 16)) }, file.Length, path);
        var bytes = new byte[ImageTrailer.Size];
        (trailer with { ImageId = id }).WriteTo(bytes);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Position = file.Length - ImageTrailer.Size;
        fs.Write(bytes);
    }
}
