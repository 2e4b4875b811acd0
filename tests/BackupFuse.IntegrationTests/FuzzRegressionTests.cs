using BackupFuse.Fuzz;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 19: every input the fuzzer ever saved as a crash (tests/fuzz-regressions/&lt;target&gt;/, minimized) and every
/// target's seed corpus is replayed through the same target code as under AFL (fuzz/BackupFuse.Fuzz), within the same
/// time and memory bounds, and must end in a result or a documented exception.
/// </summary>
public sealed class FuzzRegressionTests : IDisposable
{
    private readonly TempDirectory _dir = new("bffuzz");

    /// <summary>Every fuzz target's name.</summary>
    public static TheoryData<string> Targets => [.. FuzzTarget.All.Select(t => t.Name)];

    private static string RegressionRoot => Path.Combine(PackagingTests.Artifacts.RepoRoot, "tests", "fuzz-regressions");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [MemberData(nameof(Targets))]
    public void SavedCrashInputsEndInADocumentedOutcome(string name)
    {
        var target = FuzzTarget.Find(name);
        string directory = Path.Combine(RegressionRoot, name);
        var failures = new List<string>();
        int count = 0;
        foreach (string file in Directory.Exists(directory) ? Program.ReplayFiles([directory]) : [])
        {
            count++;
            if (Bounds.Check(target, File.ReadAllBytes(file)) is { } failure)
            {
                failures.Add($"{Path.GetFileName(file)}: {failure.GetType().Name}: {failure.Message}\n{failure.StackTrace}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {count} saved inputs of {name} fail:\n{string.Join("\n", failures)}");
    }

    [SkippableTheory]
    [MemberData(nameof(Targets))]
    public void SeedsEndInADocumentedOutcome(string name)
    {
        switch (name)
        {
            case "ext4":
                Prerequisite.Tool("mkfs.ext4", "e2fsprogs");
                break;
            case "xfs":
                Prerequisite.Tool("mkfs.xfs", "xfsprogs");
                break;
            case "ntfs":
                Prerequisite.Tool("mkntfs", "ntfs-3g");
                break;
        }

        var target = FuzzTarget.Find(name);
        target.WriteSeeds(_dir.Path);
        var seeds = Program.ReplayFiles([_dir.Path]).ToList();
        Assert.NotEmpty(seeds);
        foreach (string seed in seeds)
        {
            var failure = Bounds.Check(target, File.ReadAllBytes(seed));
            Assert.True(failure == null, $"seed {Path.GetFileName(seed)} of {name}: {failure}");
        }
    }

    [Fact]
    public void EveryRegressionDirectoryNamesATarget()
    {
        var names = FuzzTarget.All.Select(t => t.Name).ToHashSet();
        foreach (string directory in Directory.Exists(RegressionRoot) ? Directory.GetDirectories(RegressionRoot) : [])
        {
            Assert.Contains(Path.GetFileName(directory), names);
        }
    }
}
