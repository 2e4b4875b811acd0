using System.Security.Cryptography;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// A chain of a full backup and N incrementals of a changing disk, written by the real CLI into one directory
/// (p00.bfi .. pNN.bfi), with the SHA-256 of every point's disk as exported before anything else happens. Reads go
/// through BackupChain (the same code `export` uses), so checking every point after each step is cheap.
/// </summary>
internal sealed class LifecycleChain
{
    private readonly string? _passphrase;

    private LifecycleChain(string directory, string? passphrase)
    {
        Directory = directory;
        _passphrase = passphrase;
    }

    /// <summary>The images directory.</summary>
    public string Directory { get; }

    /// <summary>Identity of point i (p{i:00}.bfi), oldest first.</summary>
    public List<Guid> Ids { get; } = [];

    /// <summary>SHA-256 of point i's disk, taken right after it was written.</summary>
    public List<string> Hashes { get; } = [];

    /// <summary>The environment a CLI run needs (the passphrase when encrypted).</summary>
    public Dictionary<string, string> Env => _passphrase == null ? [] : new() { ["BACKUPFUSE_PASSPHRASE"] = _passphrase };

    /// <summary>Path of point i's original file name.</summary>
    public string PathOf(int i) => System.IO.Path.Combine(Directory, $"p{i:00}.bfi");

    /// <summary>Writes a full + <paramref name="incrementals"/> incrementals of a <paramref name="diskSize"/> disk into <paramref name="directory"/>.</summary>
    public static LifecycleChain Create(string directory, string workDisk, long diskSize, int incrementals, int seed, string? passphrase = null)
    {
        System.IO.Directory.CreateDirectory(directory);
        var chain = new LifecycleChain(directory, passphrase);
        TestDisks.CreateMixed(workDisk, diskSize, seed);
        for (int i = 0; i <= incrementals; i++)
        {
            if (i > 0)
            {
                TestDisks.Scatter(workDisk, 5, seed * 100 + i);
                if (i % 3 == 0)
                {
                    // Zero a range that held data: the incremental gets Zero entries.
                    using var h = File.OpenHandle(workDisk, FileMode.Open, FileAccess.Write);
                    RandomAccess.Write(h, new byte[256 << 10], (i * 1_234_567L) % (diskSize - (256 << 10)) & ~4095L);
                }
            }

            var args = new List<string> { "backup", workDisk, chain.PathOf(i) };
            if (i > 0)
            {
                args.AddRange(["--parent", chain.PathOf(i - 1)]);
            }
            else if (passphrase != null)
            {
                args.AddRange(["--encrypt", "--passphrase-env", "BACKUPFUSE_PASSPHRASE"]);
            }

            var r = Cli.RunWithEnv(chain.Env, [.. args]);
            Assert.True(r.ExitCode == 0, r.Output);
            chain.Ids.Add(BackupImageFile.ReadHeader(chain.PathOf(i)).ImageId);
            chain.Hashes.Add(HashFile(workDisk));
            Assert.Equal(chain.Hashes[i], chain.HashOfPoint(chain.Ids[i]));
        }

        return chain;
    }

    /// <summary>SHA-256 of the disk of the point with identity <paramref name="id"/>, found by identity in the directory.</summary>
    public string HashOfPoint(Guid id)
    {
        var catalog = new ImageCatalog([Directory]);
        var entry = catalog.Find(id) ?? throw new FileNotFoundException($"point {id} is not in {Directory}");
        using var chain = BackupChain.Open(entry.Path, catalog, Passphrase);
        using var source = chain.CreateSource();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long pos = 0; pos < source.Length; pos += buffer.Length)
        {
            var span = buffer.AsSpan(0, (int)Math.Min(buffer.Length, source.Length - pos));
            source.Read(pos, span);
            sha.AppendData(span);
        }

        return Convert.ToHexString(sha.GetHashAndReset());
    }

    /// <summary>The points whose identity some *.bfi file in the directory carries.</summary>
    public HashSet<Guid> PresentIds() => [.. new ImageCatalog([Directory]).Entries.Select(e => e.Id)];

    /// <summary>Asserts: every image file verifies, and every present point of the original chain reads its original bytes.</summary>
    public void AssertEveryPresentPointReadsItsBytes(string context)
    {
        var present = PresentIds();
        foreach (var file in System.IO.Directory.GetFiles(Directory, "*.bfi"))
        {
            using var c = BackupChain.Open(file, new ImageCatalog([Directory]), Passphrase);
            var v = ChainVerifier.Verify(c);
            Assert.True(v.IsValid, $"{context}: {file} does not verify: {string.Join("; ", v.BadChunks.Select(b => b.Reason))}");
        }

        for (int i = 0; i < Ids.Count; i++)
        {
            if (present.Contains(Ids[i]))
            {
                Assert.True(Hashes[i] == HashOfPoint(Ids[i]), $"{context}: point {i} ({Ids[i]}) reads other bytes than before");
            }
        }
    }

    /// <summary>Total size of the *.bfi files.</summary>
    public long StoredBytes() => System.IO.Directory.GetFiles(Directory, "*.bfi").Sum(f => new FileInfo(f).Length);

    private PassphraseSource? Passphrase => _passphrase == null ? null : PassphraseSource.FromString(_passphrase);

    /// <summary>SHA-256 of a file, hex.</summary>
    public static string HashFile(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }
}
