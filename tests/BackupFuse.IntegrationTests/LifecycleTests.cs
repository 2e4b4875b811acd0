using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 15 through the real CLI: merge (synthetic full, --into-parent), prune (retention, --dry-run, storage bound)
/// and their orders over a full + 10 incrementals of a changing disk; every point that stays reads exactly the bytes
/// it had before, every image verifies, encrypted chains stay encrypted with the same key parameters.
/// </summary>
public sealed class LifecycleTests : IDisposable
{
    private const long DiskSize = 24L << 20;
    private readonly TempDirectory _dir = new("bflife");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void MergeIntoParentThenSyntheticFullThenPruneToThreeKeepsEveryPointByteIdentical()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 10, seed: 3);

        // p05 folded into p04: an incremental of p03 with p05's identity; p06's binding still resolves to it.
        var merged = Cli.Ok("merge", chain.PathOf(5), "--into-parent", "--json");
        Assert.Contains("\"kind\": \"incremental\"", merged.StdOut, StringComparison.Ordinal);
        var h5 = BackupImageFile.ReadHeader(chain.PathOf(5));
        Assert.Equal(chain.Ids[5], h5.ImageId);
        Assert.Equal(chain.Ids[3], h5.ParentId);
        Assert.True(DerivedImage.IsDerived(h5));
        chain.AssertEveryPresentPointReadsItsBytes("after merge --into-parent");

        // p07 as a synthetic full (replacing its file): p08..p10 still resolve through it.
        Cli.Ok("merge", chain.PathOf(7));
        Assert.True(BackupImageFile.ReadHeader(chain.PathOf(7)).IsFull);
        using (var c10 = BackupChain.Open(chain.PathOf(10)))
        {
            Assert.Equal(4, c10.Layers.Count); // p10 p09 p08 p07(full)
        }

        chain.AssertEveryPresentPointReadsItsBytes("after merge");
        Assert.Equal(11, chain.PresentIds().Count);

        // --dry-run changes nothing and says what would happen.
        var before = Snapshot(chain.Directory);
        var dry = Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "3", "--dry-run");
        Assert.Equal(before, Snapshot(chain.Directory));
        Assert.Contains("would merge into a synthetic full", dry.StdOut, StringComparison.Ordinal);
        Assert.Equal(8, dry.StdOut.Split('\n').Count(l => l.StartsWith("would delete", StringComparison.Ordinal)));

        Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "3");
        Assert.Equal(new[] { chain.Ids[8], chain.Ids[9], chain.Ids[10] }.Order(), chain.PresentIds().Order());
        Assert.Equal(3, Directory.GetFiles(chain.Directory, "*.bfi").Length);
        chain.AssertEveryPresentPointReadsItsBytes("after prune");

        // Storage: no more than a fresh full of point 8 plus the two newest incrementals.
        Cli.Ok("export", chain.PathOf(8), _dir["p8.raw"]);
        Cli.Ok("backup", _dir["p8.raw"], _dir["fresh8.bfi"]);
        long bound = new FileInfo(_dir["fresh8.bfi"]).Length + new FileInfo(chain.PathOf(9)).Length + new FileInfo(chain.PathOf(10)).Length;
        Assert.True(chain.StoredBytes() <= bound, $"after pruning to 3 points {chain.StoredBytes()} bytes are stored, a fresh full + 2 incrementals take {bound}");
        Assert.Equal(Array.Empty<string>(), Directory.GetFiles(chain.Directory, "*.partial"));
    }

    [Fact]
    public void PruneFirstThenMergeTheNewestThenPruneAgainKeepsThePointsByteIdentical()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 10, seed: 4);

        // Keep 6 and two more by "daily" (all points are of one day: the daily rule adds nothing new).
        var pruned = Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "6", "--keep-daily", "2", "--json");
        Assert.Contains("\"fold\": \"SyntheticFull\"", pruned.StdOut, StringComparison.Ordinal);
        Assert.Equal(6, chain.PresentIds().Count);
        Assert.True(BackupImageFile.ReadHeader(chain.PathOf(5)).IsFull);
        chain.AssertEveryPresentPointReadsItsBytes("after prune to 6");

        Cli.Ok("merge", chain.PathOf(10));
        chain.AssertEveryPresentPointReadsItsBytes("after merging the newest");

        // Keep p05 and p10 by keeping the last 1 and naming p05 in a plugin: p06..p09 go, p10 is already full.
        Directory.CreateDirectory(_dir["vms"]);
        Cli.Ok("plugin", "create", chain.PathOf(5), Path.Combine(_dir["vms"], "old.vhdx"));
        var plan = Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "1", "--plugins", _dir["vms"]);
        Assert.Contains("plugin", plan.StdOut, StringComparison.Ordinal);
        Assert.Equal(new[] { chain.Ids[5], chain.Ids[10] }.Order(), chain.PresentIds().Order());
        chain.AssertEveryPresentPointReadsItsBytes("after prune to 1 + plugin");
    }

    [Fact]
    public void SeveralFilesOfOneIdentityServeItsChildrenAndTheCatalogPrefersTheFull()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 4, seed: 5);
        string copy = Path.Combine(chain.Directory, "z-p02-full.bfi");
        Cli.Ok("merge", chain.PathOf(2), "-o", copy);
        Assert.False(BackupImageFile.ReadHeader(chain.PathOf(2)).IsFull); // the original stays
        var catalog = new ImageCatalog([chain.Directory]);
        Assert.Equal(copy, catalog.Find(chain.Ids[2])!.Path);
        Assert.Equal(2, catalog.FindAll(chain.Ids[2]).Count);
        using (var c4 = BackupChain.Open(chain.PathOf(4), catalog))
        {
            Assert.Equal(3, c4.Layers.Count); // p04 p03 z-p02-full
        }

        chain.AssertEveryPresentPointReadsItsBytes("with two files for p02");

        // The full gone, the original incremental serves again.
        File.Delete(copy);
        chain.AssertEveryPresentPointReadsItsBytes("after deleting the synthetic full");
    }

    [Fact]
    public void EncryptedChainsStayEncryptedWithTheSameKeyParameters()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 4, seed: 6, passphrase: "lifecycle secret");
        var salt = BackupImageFile.ReadHeader(chain.PathOf(0)).KdfSalt;
        var keyCheck4 = BackupImageFile.ReadHeader(chain.PathOf(4)).KeyCheck;
        var noPass = Cli.Run("merge", chain.PathOf(3));
        Assert.Equal(1, noPass.ExitCode);
        Assert.Contains("passphrase", noPass.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", noPass.StdErr, StringComparison.Ordinal);

        Assert.Equal(0, Cli.RunWithEnv(chain.Env, "merge", chain.PathOf(3), "--into-parent").ExitCode);
        Assert.Equal(0, Cli.RunWithEnv(chain.Env, "merge", chain.PathOf(4)).ExitCode);

        // Same identity, other keys: the synthetic full's keys come from its own file id (no (key, nonce) reuse).
        var merged4 = BackupImageFile.ReadHeader(chain.PathOf(4));
        Assert.NotEqual(Guid.Empty, DerivedImage.FileId(merged4));
        Assert.NotEqual(merged4.ImageId, DerivedImage.KeyId(merged4));
        Assert.NotEqual(keyCheck4, merged4.KeyCheck);
        Assert.Equal(0, Cli.RunWithEnv(chain.Env, "prune", "--images", chain.Directory, "--keep-last", "2").ExitCode);
        foreach (var file in Directory.GetFiles(chain.Directory, "*.bfi"))
        {
            var h = BackupImageFile.ReadHeader(file);
            Assert.NotEqual(EncryptionMethod.None, h.Encryption);
            Assert.Equal(salt, h.KdfSalt);
            Assert.Throws<BackupFuse.BackupImage.Crypto.PassphraseException>(() => BackupImageFile.Open(file).Dispose());
        }

        chain.AssertEveryPresentPointReadsItsBytes("encrypted, after merges and prune");
    }

    [Fact]
    public void ErrorsAreOneClearLine()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 1, seed: 7);
        var full = Cli.Run("merge", chain.PathOf(0));
        Assert.Equal(1, full.ExitCode);
        Assert.Contains("already a full backup", full.StdErr, StringComparison.Ordinal);
        var missing = Cli.Run("merge", _dir["nope.bfi"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no such file", missing.StdErr, StringComparison.Ordinal);
        var usage = Cli.Run("prune", "--images", chain.Directory);
        Assert.Equal(2, usage.ExitCode);
        var exists = Cli.Run("merge", chain.PathOf(1), "-o", chain.PathOf(0));
        Assert.Equal(1, exists.ExitCode);
        Assert.Contains("already exists", exists.StdErr, StringComparison.Ordinal);
        Assert.All(new[] { full, missing, exists }, r => Assert.DoesNotContain("   at ", r.StdErr, StringComparison.Ordinal));
    }

    private static string Snapshot(string directory) =>
        string.Join("\n", Directory.GetFiles(directory).Order(StringComparer.Ordinal).Select(f => $"{f} {new FileInfo(f).Length} {File.GetLastWriteTimeUtc(f):O}"));
}
