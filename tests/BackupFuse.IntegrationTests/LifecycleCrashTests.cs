using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Crash injection (issue 15): merge, merge --into-parent and prune are killed with SIGKILL at every write phase in
/// turn (BACKUPFUSE_CRASH_AT=K, K = 1, 2, ... until the command completes). After each kill every image present
/// verifies, and every point that existed before reads its original bytes, or was one prune was asked to forget.
/// </summary>
public sealed class LifecycleCrashTests : IDisposable
{
    private const long DiskSize = 12L << 20;
    private readonly TempDirectory _dir = new("bflifecrash");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void SyntheticFullSurvivesAKillAtEveryPhase() =>
        KillAtEveryPhase(chain => ["merge", chain.PathOf(5)], mayForget: [], minPhases: 4);

    [Fact]
    public void MergeIntoParentSurvivesAKillAtEveryPhase() =>
        KillAtEveryPhase(chain => ["merge", chain.PathOf(4), "--into-parent"], mayForget: [], minPhases: 4);

    [Fact]
    public void PruneSurvivesAKillAtEveryPhase() =>
        KillAtEveryPhase(chain => ["prune", "--images", chain.Directory, "--keep-last", "2"], mayForget: [0, 1, 2, 3], minPhases: 8);

    private void KillAtEveryPhase(Func<LifecycleChain, string[]> command, int[] mayForget, int minPhases)
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 5, seed: 11);
        ExternalTool.Check("cp", "-a", chain.Directory, _dir["pristine"]);
        int phase = 1;
        for (; phase < 40; phase++)
        {
            ExternalTool.Check("rm", "-rf", chain.Directory);
            ExternalTool.Check("cp", "-a", _dir["pristine"], chain.Directory);
            var r = Cli.RunWithEnv(new Dictionary<string, string> { [CrashPoint.Variable] = phase.ToString(System.Globalization.CultureInfo.InvariantCulture) }, command(chain));
            if (r.ExitCode == 0)
            {
                break;
            }

            Assert.True(r.ExitCode == 137, $"phase {phase}: expected a SIGKILL (137), got {r.ExitCode}: {r.Output}");
            Assert.Contains($"crash point {phase}:", r.StdErr, StringComparison.Ordinal);
            chain.AssertEveryPresentPointReadsItsBytes($"killed at phase {phase}");
            var present = chain.PresentIds();
            for (int i = 0; i < chain.Ids.Count; i++)
            {
                Assert.True(present.Contains(chain.Ids[i]) || mayForget.Contains(i), $"killed at phase {phase}: point {i} is gone");
            }
        }

        Assert.True(phase - 1 >= minPhases, $"only {phase - 1} write phases were interrupted");
        chain.AssertEveryPresentPointReadsItsBytes("after the complete run");
        var after = chain.PresentIds();
        Assert.Equal(chain.Ids.Count - mayForget.Length, after.Count);
    }
}
