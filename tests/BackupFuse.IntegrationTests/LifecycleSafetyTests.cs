using BackupFuse.BackupImage.Reading;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Safety of merge/prune/commit on a shared image directory, through the real CLI: the temporary file is never a
/// predictable name (a planted symlink is not followed), one run at a time per directory (the lifecycle lock), a policy
/// that keeps nothing is refused, every image of a volume plugin is protected, and a protected point outside the
/// directory is reported.
/// </summary>
public sealed class LifecycleSafetyTests : IDisposable
{
    private const long DiskSize = 8L << 20;
    private readonly TempDirectory _dir = new("bflifesafe");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void MergeNeverFollowsAPlantedPartialSymlink()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 3, seed: 5);
        string outside = _dir["outside.txt"];
        File.WriteAllText(outside, "precious");
        string planted = chain.PathOf(3) + ".partial";
        File.CreateSymbolicLink(planted, outside);

        Cli.Ok("merge", chain.PathOf(3));

        Assert.Equal("precious", File.ReadAllText(outside));
        Assert.Equal(outside, new FileInfo(planted).LinkTarget);
        Assert.True(BackupImageFile.ReadHeader(chain.PathOf(3)).IsFull);
        Assert.Null(new FileInfo(chain.PathOf(3)).LinkTarget);
        Assert.Empty(Directory.GetFiles(chain.Directory, ".*.partial"));
        chain.AssertEveryPresentPointReadsItsBytes("after merge next to a planted symlink");
    }

    [Fact]
    public void ASecondRunOnOneDirectoryIsRefusedWithOneLine()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 2, seed: 6);
        string lockPath = Path.Combine(chain.Directory, ".backupfuse-lifecycle.lock");

        // Another run holds the lock (FileShare.None is flock(LOCK_EX) on Linux, the lock the commands take).
        using (new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            foreach (var args in new[] { new[] { "merge", chain.PathOf(2) }, ["prune", "--images", chain.Directory, "--keep-last", "1"] })
            {
                var r = Cli.Run(args);
                Assert.Equal(1, r.ExitCode);
                Assert.Equal($"another merge/prune/commit is running on {chain.Directory}", r.StdErr.Trim().Split('\n').Single().Replace("error: ", string.Empty, StringComparison.Ordinal));
            }
        }

        Assert.Equal(3, chain.PresentIds().Count);
        Assert.False(BackupImageFile.ReadHeader(chain.PathOf(2)).IsFull);
        Cli.Ok("merge", chain.PathOf(2));
        Assert.True(BackupImageFile.ReadHeader(chain.PathOf(2)).IsFull);
    }

    [Fact]
    public void PruneThatKeepsNothingIsAUsageError()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 1, seed: 7);

        var r = Cli.Run("prune", "--images", chain.Directory, "--keep-last", "0");

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("would delete every point", r.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, chain.PresentIds().Count);
    }

    [Fact]
    public void PruneKeepsEveryImageAVolumePluginNamesAndWarnsAboutPointsElsewhere()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 5, seed: 8);
        Directory.CreateDirectory(_dir["vms"]);
        string plugin = Path.Combine(_dir["vms"], "two.vhdx");
        Cli.Ok("plugin", "create", chain.PathOf(1), plugin);

        // A format-2 plugin naming two images (as `plugin create --volume A --volume B` writes; these are disks, which
        // prune does not care about: it reads the names only).
        string text = File.ReadAllText(plugin).Replace("backupfuse-plugin 1\n", "backupfuse-plugin 2\n", StringComparison.Ordinal);
        File.WriteAllText(plugin, text + $"image = {chain.PathOf(3)}\nimage-id = {chain.Ids[3]:D}\n");

        // A plugin whose point lies in another directory.
        string elsewhere = _dir["elsewhere.bfi"];
        Cli.Ok("backup", _dir["disk.raw"], elsewhere);
        Cli.Ok("plugin", "create", elsewhere, Path.Combine(_dir["vms"], "other.vhdx"));

        var r = Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "1", "--plugins", _dir["vms"]);

        Assert.Equal(new[] { chain.Ids[1], chain.Ids[3], chain.Ids[5] }.Order(), chain.PresentIds().Order());
        chain.AssertEveryPresentPointReadsItsBytes("after prune with a volume plugin");
        Assert.Contains(r.StdErr.Split('\n'), l => l.Contains("other.vhdx", StringComparison.Ordinal) && l.Contains("not in the pruned directory", StringComparison.Ordinal));
    }
}
