using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - Issue 12's acceptance boot: the test guest's full and incremental backups are streamed into s3rver by
//   `backupfuse backup ... s3://`, a plugin names the S3 incremental, and the mount reads the chain from S3 only
//   (--images s3://..., no local image) through an empty --cache-dir: a second host, in effect. The guest boots,
//   sees the incremental's file and writes one; after a remount with the now warm cache it boots again and sees
//   its write. Boot times (cold, warm) and the mount's status line go to the test output, for information only:
//   timing is measured by scripts/bench.sh, not asserted here.

/// <summary>Issue 12: a VM boots from a backup in S3 (cold, then warm cache) and keeps its write across a remount.</summary>
[Collection("mounts")]
public sealed class RemoteBootTests : IClassFixture<GuestBackupsFixture>, IClassFixture<S3rverFixture>
{
    private readonly GuestBackupsFixture _guest;
    private readonly S3rverFixture _s3;
    private readonly ITestOutputHelper _output;

    public RemoteBootTests(GuestBackupsFixture guest, S3rverFixture s3, ITestOutputHelper output)
    {
        _guest = guest;
        _s3 = s3;
        _output = output;
    }

    [SkippableFact]
    public void AGuestBootsFromABackupInS3ColdThenWarmAndSeesItsWriteAfterARemount()
    {
        Prerequisite.SkipIf(_guest.Missing);
        Prerequisite.SkipIf(_s3.Missing);
        _s3.Ok("backup", _guest.FullDisk, "s3://bkt/boot/guest-full.bfi");
        _s3.Ok("backup", _guest.IncDisk, "s3://bkt/boot/guest-inc.bfi", "--parent", "s3://bkt/boot/guest-full.bfi");
        string vms = _guest.Dir["vms-s3"];
        string cache = _guest.Dir["cache-s3"];
        Directory.CreateDirectory(vms);
        Directory.CreateDirectory(cache);
        string plugin = Path.Combine(vms, "guest.vhdx");
        _s3.Ok("plugin", "create", "s3://bkt/boot/guest-inc.bfi", plugin);
        SecretAbsent(plugin);
        string drive = $"file={plugin},format=vhdx,cache=none,aio=threads";
        string[] mount = [vms, "--images", "s3://bkt/boot/", "--s3-endpoint", _s3.Endpoint, "--cache-dir", cache];

        using (var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, mount))
        {
            var (log, took) = GuestBoot.Boot(drive, _guest.Dir["s3-cold.log"], "bf.write=written-from-s3");
            _output.WriteLine($"boot from S3, cold cache: {took.TotalSeconds:F1} s; {Status(vms)}");
            Assert.Contains("BFGUEST-FILE:from-incremental", log, StringComparison.Ordinal);
            Assert.Contains("BFGUEST-WROTE", log, StringComparison.Ordinal);
            S3rverFixture.AssertNoSecret(daemon.Log);
        }

        Assert.NotEmpty(Directory.EnumerateFiles(cache, "*", SearchOption.AllDirectories));
        using (var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, mount))
        {
            var (log, took) = GuestBoot.Boot(drive, _guest.Dir["s3-warm.log"], null);
            _output.WriteLine($"boot from S3, warm cache: {took.TotalSeconds:F1} s; {Status(vms)}");
            Assert.Contains("BFGUEST-SEEN:written-from-s3", log, StringComparison.Ordinal);
            Assert.Contains("BFGUEST-FILE:from-incremental", log, StringComparison.Ordinal);
            S3rverFixture.AssertNoSecret(daemon.Log);
        }

        // The writes went to the local changes store, never into the bucket.
        Assert.Equal(["s3://bkt/boot/guest-full.bfi", "s3://bkt/boot/guest-inc.bfi"], _s3.List("boot/"));
    }

    /// <summary>
    /// The status of the mount at <paramref name="vms"/> (cache hit rate, bytes fetched) for the output, once the daemon
    /// has published its figures after the boot (every 5 s).
    /// </summary>
    private static string Status(string vms)
    {
        Thread.Sleep(TimeSpan.FromSeconds(6));
        var lines = Cli.Run("status").StdOut.Split('\n');
        int at = Array.FindIndex(lines, l => l.StartsWith(vms + "\t", StringComparison.Ordinal));
        return at < 0
            ? "(no status for the mount)"
            : string.Join("; ", lines.Skip(at + 1).TakeWhile(l => l.StartsWith(' ')).Select(l => l.Trim()));
    }

    private static void SecretAbsent(string file) => S3rverFixture.AssertNoSecret(File.ReadAllText(file));
}
