using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 18: the nightly boot-check example units (packaging/systemd/backupfuse-boot-check.{service,timer}) verify
/// with systemd-analyze, and the command line they run is one the program accepts.
/// </summary>
public sealed class BootCheckPackagingTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfbootunit");

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public void TheTimerAndServiceVerifyAndTheirCommandLineParses()
    {
        string service = File.ReadAllText(Path.Combine(GuestBoot.Repo, "packaging/systemd/backupfuse-boot-check.service"));
        string timer = File.ReadAllText(Path.Combine(GuestBoot.Repo, "packaging/systemd/backupfuse-boot-check.timer"));
        Assert.Contains("OnCalendar=", timer, StringComparison.Ordinal);
        Assert.Contains("WantedBy=timers.target", timer, StringComparison.Ordinal);
        string exec = service.Split('\n').Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal));
        Assert.StartsWith("ExecStart=/usr/bin/backupfuse boot-check --latest --images ${BACKUPFUSE_IMAGES} --report ${BACKUPFUSE_REPORT}", exec, StringComparison.Ordinal);

        // The unit's command with its default arguments, on an empty images directory: not a usage error (2) but
        // the one-line "nothing there" error (1), so every option it names exists.
        Directory.CreateDirectory(_dir["images"]);
        string args = service.Split('\n').Single(l => l.StartsWith("Environment=\"BACKUPFUSE_BOOT_CHECK_ARGS=", StringComparison.Ordinal))
            .Split('=', 3)[2].TrimEnd('"');
        var r = Cli.Run(["boot-check", "--latest", "--images", _dir["images"], "--report", _dir["report"], .. args.Split(' ')]);
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("--latest: no backup images in", r.StdErr, StringComparison.Ordinal);

        Prerequisite.Tool("systemd-analyze", "systemd");
        File.WriteAllText(_dir["backupfuse-boot-check.service"], service.Replace("ExecStart=/usr/bin/backupfuse", "ExecStart=" + Cli.Executable, StringComparison.Ordinal));
        File.WriteAllText(_dir["backupfuse-boot-check.timer"], timer);
        var verify = ExternalTool.Run("systemd-analyze", ["verify", _dir["backupfuse-boot-check.service"], _dir["backupfuse-boot-check.timer"]], TimeSpan.FromMinutes(1));
        Assert.True(verify.ExitCode == 0 && verify.Output.Trim().Length == 0, $"systemd-analyze verify: {verify.Output}");
    }
}
