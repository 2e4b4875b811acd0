using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

public sealed class EncryptionTests : IDisposable
{
    private const string Secret = "correct horse battery staple \u00e9";
    private readonly TempDirectory _dir = new("bfi-enc");

    public void Dispose() => _dir.Dispose();

    private BackupOptions Encrypted(PassphraseSource p, BackupChain? parent = null) =>
        new() { Encrypt = true, Passphrase = p, KdfIterations = BackupOptions.MinKdfIterations, Parent = parent, EntriesPerPage = 32 };

    [Fact]
    public void EncryptedChainRoundTripsAndHidesThePlaintext()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 6 << 20, seed: 31);
        File.WriteAllText(_dir["pass.txt"], Secret + "\n");
        var fromFile = PassphraseSource.FromFile(_dir["pass.txt"]);
        BackupWriter.Backup(disk, _dir["full.bfi"], Encrypted(fromFile));
        MixedDataGenerator.ScatterChanges(disk, 5, 30_000, seed: 32);
        using (var parent = BackupChain.Open(_dir["full.bfi"], passphrase: fromFile))
        {
            BackupWriter.Backup(disk, _dir["inc.bfi"], Encrypted(fromFile, parent));
        }

        // Text runs of the disk must not appear in the image (compressed or not).
        byte[] imageBytes = File.ReadAllBytes(_dir["full.bfi"]);
        Assert.True(imageBytes.AsSpan().IndexOf("backup chunk"u8) < 0 && imageBytes.AsSpan().IndexOf("kernel "u8) < 0, "plaintext visible in the encrypted image");

        Environment.SetEnvironmentVariable("BFI_TEST_PASS", Secret);
        var fromEnv = PassphraseSource.FromEnvironment("BFI_TEST_PASS");
        using var chain = BackupChain.Open(_dir["inc.bfi"], passphrase: fromEnv);
        Assert.All(chain.Layers, l => Assert.True(l.IsEncrypted));
        Assert.Equal(chain.Layers[0].Header.KdfSalt, chain.Layers[1].Header.KdfSalt); // one derivation for the chain
        using var source = chain.CreateSource();
        ImageTestKit.AssertSameContent(disk, source);
        Assert.True(ChainVerifier.Verify(chain).IsValid);
    }

    [Fact]
    public void WrongOrMissingPassphraseGivesAClearErrorWithoutThePassphrase()
    {
        string disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(disk, 1 << 20, seed: 33);
        BackupWriter.Backup(disk, _dir["e.bfi"], Encrypted(PassphraseSource.FromString(Secret)));

        const string wrong = "Tr0ub4dor&3-wrong";
        var e = Assert.Throws<PassphraseException>(() => BackupImageFile.Open(_dir["e.bfi"], PassphraseSource.FromString(wrong)));
        Assert.Equal($"wrong passphrase for {_dir["e.bfi"]} (from passphrase given by the program)", e.Message);
        Assert.DoesNotContain(wrong, e.ToString());
        Assert.DoesNotContain(Secret, e.ToString());

        var missing = Assert.Throws<PassphraseException>(() => BackupImageFile.Open(_dir["e.bfi"]));
        Assert.Contains("is encrypted", missing.Message);

        var unset = Assert.Throws<PassphraseException>(() => BackupImageFile.Open(_dir["e.bfi"], PassphraseSource.FromEnvironment("BFI_TEST_UNSET_VARIABLE")));
        Assert.Contains("BFI_TEST_UNSET_VARIABLE", unset.Message);

        var noFile = Assert.ThrowsAny<IOException>(() => BackupImageFile.Open(_dir["e.bfi"], PassphraseSource.FromFile(_dir["nope.txt"])));
        Assert.Contains("passphrase file", noFile.Message);
        Assert.DoesNotContain(Secret, PassphraseSource.FromString(Secret).ToString());
    }

    [Fact]
    public void TamperedCiphertextAndSwappedChunksAreDetected()
    {
        var content = new byte[1 << 20];
        new Random(3).NextBytes(content);
        var p = PassphraseSource.FromString(Secret);
        BackupWriter.Backup(new BackupFuse.Core.MemorySource(content), _dir["t.bfi"], Encrypted(p) with { Codec = ChunkCodec.None });

        // Swap two stored payloads of equal length. The index that holds their CRCs is itself authenticated, and
        // the GCM AAD binds each payload to its file offset, so a moved payload can never be read as another chunk.
        ChunkEntry a, b;
        using (var image = BackupImageFile.Open(_dir["t.bfi"], p))
        {
            a = image.GetEntry(2);
            b = image.GetEntry(3);
        }

        Assert.Equal(a.StoredLength, b.StoredLength);
        byte[] file = File.ReadAllBytes(_dir["t.bfi"]);
        byte[] pa = file.AsSpan((int)a.PayloadOffset, a.StoredLength).ToArray();
        file.AsSpan((int)b.PayloadOffset, b.StoredLength).CopyTo(file.AsSpan((int)a.PayloadOffset));
        pa.CopyTo(file.AsSpan((int)b.PayloadOffset));
        File.WriteAllBytes(_dir["swapped.bfi"], file);

        using var swapped = BackupImageFile.Open(_dir["swapped.bfi"], p);
        var buffer = new byte[65536];
        var e = Assert.Throws<InvalidDataException>(() => swapped.ReadChunk(2, buffer));
        Assert.Contains("chunk 2", e.Message);
    }
}
