using System.Diagnostics;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 12 with s3rver on loopback: backups streamed into S3 (full and incremental), info/verify/export of the S3
/// images, mounts with --images s3://... (also a chain mixing a local full and an S3 incremental) checked by
/// qemu-img compare, an interrupted upload leaving no object, no overwrite, one clear line for wrong credentials, and
/// the secret key never showing in any output, log, plugin file or command line; file-level backups (issue 13) streamed
/// into S3 and mounted as exFAT and FAT32 disks.
/// </summary>
[Collection("mounts")]
public sealed class RemoteS3Tests : IClassFixture<S3rverFixture>
{
    private const long DiskSize = 32L << 20;
    private readonly S3rverFixture _s3;

    public RemoteS3Tests(S3rverFixture s3)
    {
        _s3 = s3;
    }

    private TempDirectory Dir => _s3.Dir;

    [SkippableFact]
    public void Full_and_incremental_backups_to_S3_read_back_through_info_verify_and_export()
    {
        Prerequisite.SkipIf(_s3.Missing);
        var (p0, p1) = Disks("t1");
        _s3.Ok("backup", p0, "s3://bkt/t1/full.bfi");
        _s3.Ok("backup", p1, "s3://bkt/t1/inc.bfi", "--parent", "s3://bkt/t1/full.bfi");
        Assert.Equal(["s3://bkt/t1/full.bfi", "s3://bkt/t1/inc.bfi"], _s3.List("t1/"));

        var info = _s3.Ok("info", "s3://bkt/t1/inc.bfi");
        Assert.Contains("chain:        2 image(s)", info.StdOut, StringComparison.Ordinal);
        Assert.Contains("- s3://bkt/t1/inc.bfi", info.StdOut, StringComparison.Ordinal);
        Assert.Contains("- s3://bkt/t1/full.bfi", info.StdOut, StringComparison.Ordinal);
        Assert.Contains("OK: 2 image(s)", _s3.Ok("verify", "s3://bkt/t1/inc.bfi").StdOut, StringComparison.Ordinal);

        _s3.Ok("export", "s3://bkt/t1/full.bfi", Dir["t1-full.raw"]);
        _s3.Ok("export", "s3://bkt/t1/inc.bfi", Dir["t1-inc.raw"]);
        Assert.True(TestDisks.SameContent(p0, Dir["t1-full.raw"]), "export of the full backup differs from its source");
        Assert.True(TestDisks.SameContent(p1, Dir["t1-inc.raw"]), "export of the incremental differs from its source");
        Assert.False(TestDisks.SameContent(p0, Dir["t1-inc.raw"]), "the two points should differ");
    }

    [SkippableFact]
    public void Mount_with_S3_images_serves_plugins_naming_S3_images_for_both_points()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var (p0, p1) = Disks("t2");
        _s3.Ok("backup", p0, "s3://bkt/t2/full.bfi");
        _s3.Ok("backup", p1, "s3://bkt/t2/inc.bfi", "--parent", "s3://bkt/t2/full.bfi");
        string vms = Directory.CreateDirectory(Dir["t2-vms"]).FullName;
        _s3.Ok("plugin", "create", "s3://bkt/t2/full.bfi", Path.Combine(vms, "full.vhdx"), "--images", "s3://bkt/t2/");
        _s3.Ok("plugin", "create", "s3://bkt/t2/inc.bfi", Path.Combine(vms, "inc.vhdx"), "--images", "s3://bkt/t2/");
        Assert.Contains("image = s3://bkt/t2/inc.bfi\n", File.ReadAllText(Path.Combine(vms, "inc.vhdx")), StringComparison.Ordinal);

        using (var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, vms, "--images", "s3://bkt/t2/", "--s3-endpoint", _s3.Endpoint, "--read-only"))
        {
            // The secret is in the daemon's environment (the SDK reads it there) but never on its command line.
            S3rverFixture.AssertNoSecret(File.ReadAllText($"/proc/{daemon.Pid}/cmdline"));
            Compare(Path.Combine(vms, "full.vhdx"), p0);
            Compare(Path.Combine(vms, "inc.vhdx"), p1);
            daemon.Stop();
            S3rverFixture.AssertNoSecret(daemon.Log);
        }

        foreach (var plugin in Directory.GetFiles(vms, "*", SearchOption.AllDirectories))
        {
            S3rverFixture.AssertNoSecret(File.ReadAllText(plugin));
        }
    }

    [SkippableFact]
    public void A_chain_with_a_local_full_and_an_incremental_in_S3_mounts_from_mixed_roots()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var (p0, p1) = Disks("t3");
        string local = Directory.CreateDirectory(Dir["t3-local"]).FullName;
        string full = Path.Combine(local, "full.bfi");
        _s3.Ok("backup", p0, full);
        _s3.Ok("backup", p1, "s3://bkt/t3/inc.bfi", "--parent", full);
        string vms = Directory.CreateDirectory(Dir["t3-vms"]).FullName;
        _s3.Ok("plugin", "create", "s3://bkt/t3/inc.bfi", Path.Combine(vms, "inc.vhdx"), "--images", local);
        _s3.Ok("plugin", "create", full, Path.Combine(vms, "full.vhdx"));
        var info = _s3.Ok("info", Path.Combine(vms, "inc.vhdx"), "--images", local, "--images", "s3://bkt/t3/");
        Assert.Contains("- " + full, info.StdOut, StringComparison.Ordinal);

        // Without the local root the full backup is not found: the incremental alone is refused.
        Assert.Equal(1, _s3.Run("info", "s3://bkt/t3/inc.bfi").ExitCode);

        using var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, vms, "--images", local, "--images", "s3://bkt/t3/", "--s3-endpoint", _s3.Endpoint, "--read-only");
        Compare(Path.Combine(vms, "inc.vhdx"), p1);
        Compare(Path.Combine(vms, "full.vhdx"), p0);
        daemon.Stop();
        S3rverFixture.AssertNoSecret(daemon.Log);
    }

    [SkippableFact]
    public void A_backup_killed_during_the_upload_leaves_no_object()
    {
        Prerequisite.SkipIf(_s3.Missing);
        string disk = Dir["t4.raw"];
        WriteRandom(disk, 48L << 20, seed: 4);
        using var relay = new RemoteTcpRelay(_s3.Port);
        var psi = new ProcessStartInfo(Cli.Executable) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "backup", disk, "s3://bkt/t4/killed.bfi", "--codec", "none", "--s3-endpoint", $"http://127.0.0.1:{relay.Port}" })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in _s3.Env)
        {
            psi.Environment[k] = v;
        }

        using var backup = Process.Start(psi)!;
        var clock = Stopwatch.StartNew();
        while (relay.BytesUp < 12L << 20)
        {
            if (backup.HasExited)
            {
                Assert.Fail($"the backup ended before it was killed: {backup.StandardError.ReadToEnd()}");
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "the upload did not get going");
            Thread.Sleep(10);
        }

        relay.Pause(); // the first part is uploaded; hold the rest so the kill lands mid-way
        backup.Kill();
        backup.WaitForExit();
        relay.Resume();
        Assert.Empty(_s3.List("t4/"));
        Assert.Equal(1, _s3.Run("info", "s3://bkt/t4/killed.bfi").ExitCode);

        // The same key can be written afterwards (nothing half-written blocks it).
        _s3.Ok("backup", disk, "s3://bkt/t4/killed.bfi", "--codec", "none");
        Assert.Equal(["s3://bkt/t4/killed.bfi"], _s3.List("t4/"));
    }

    [SkippableFact]
    public void A_backup_that_fails_aborts_its_upload_and_says_why_in_one_line()
    {
        Prerequisite.SkipIf(_s3.Missing);
        var (p0, _) = Disks("t5");
        // A parent of another disk size: the writer fails after the upload was started (the HeadObject and
        // CreateMultipartUpload happen first), so the abort path runs.
        string other = Dir["t5-other.raw"];
        WriteRandom(other, 16L << 20, seed: 5);
        _s3.Ok("backup", other, "s3://bkt/t5/other.bfi");
        var r = _s3.Run("backup", p0, "s3://bkt/t5/bad.bfi", "--parent", "s3://bkt/t5/other.bfi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("same disk", r.StdErr, StringComparison.Ordinal);
        Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", r.StdErr, StringComparison.Ordinal);
        S3rverFixture.AssertNoSecret(r.Output);
        Assert.Equal(["s3://bkt/t5/other.bfi"], _s3.List("t5/"));
    }

    [SkippableFact]
    public void An_existing_object_is_never_overwritten()
    {
        Prerequisite.SkipIf(_s3.Missing);
        var (p0, p1) = Disks("t6");
        _s3.Ok("backup", p0, "s3://bkt/t6/x.bfi");
        string before = _s3.Ok("info", "s3://bkt/t6/x.bfi", "--json").StdOut;
        var r = _s3.Run("backup", p1, "s3://bkt/t6/x.bfi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("error: s3://bkt/t6/x.bfi already exists: an image is never overwritten", r.StdErr, StringComparison.Ordinal);
        Assert.Equal(before, _s3.Ok("info", "s3://bkt/t6/x.bfi", "--json").StdOut);
    }

    [SkippableFact]
    public void Wrong_credentials_give_one_clear_line_without_the_secret()
    {
        Prerequisite.SkipIf(_s3.Missing);
        var (p0, _) = Disks("t7");
        _s3.Ok("backup", p0, "s3://bkt/t7/x.bfi");
        var env = _s3.Env;
        env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGKEY";
        foreach (var args in new[] { new[] { "info", "s3://bkt/t7/x.bfi" }, ["backup", p0, "s3://bkt/t7/y.bfi"], ["verify", "s3://bkt/t7/x.bfi", "--images", "s3://bkt/t7/"] })
        {
            var r = Cli.RunWithEnv(env, [.. args, "--s3-endpoint", _s3.Endpoint]);
            Assert.Equal(1, r.ExitCode);
            var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"expected one line, got: {r.StdErr}");
            Assert.StartsWith("error: s3://bkt/t7/", lines[0], StringComparison.Ordinal);
            Assert.Contains("access denied", lines[0], StringComparison.Ordinal);
            S3rverFixture.AssertNoSecret(r.Output);
        }

        // No credentials at all: one line that says so (before, the SDK's sentence ended in a colon, its list cut off).
        var none = Cli.RunWithEnv(
            new Dictionary<string, string>
            {
                ["AWS_ACCESS_KEY_ID"] = string.Empty, ["AWS_SECRET_ACCESS_KEY"] = string.Empty, ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent",
                ["AWS_CONFIG_FILE"] = "/nonexistent", ["AWS_EC2_METADATA_DISABLED"] = "true",
            },
            "info", "s3://bkt/t7/x.bfi", "--s3-endpoint", _s3.Endpoint);
        Assert.Equal(1, none.ExitCode);
        Assert.Equal("error: s3://bkt/t7/x.bfi: cannot open: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or use an instance role; see docs/remote.md)", none.StdErr.Trim());

        // A mount with refused credentials starts, says at once that the root cannot be listed, and shows no secret.
        string vms = Directory.CreateDirectory(Dir["t7-vms"]).FullName;
        using var daemon = DaemonProcess.StartWithEnv(vms, env, vms, "--images", "s3://bkt/t7/", "--s3-endpoint", _s3.Endpoint, "--read-only");
        daemon.Stop();
        Assert.Contains("s3://bkt/t7/: cannot list: access denied", daemon.Log, StringComparison.Ordinal);
        S3rverFixture.AssertNoSecret(daemon.Log);
    }

    [SkippableFact]
    public void A_plugin_naming_an_S3_image_outside_the_mounts_roots_is_refused()
    {
        Prerequisite.SkipIf(_s3.Missing);
        var (p0, _) = Disks("t8");
        _s3.Ok("backup", p0, "s3://bkt/t8/secret/x.bfi");
        string vms = Directory.CreateDirectory(Dir["t8-vms"]).FullName;
        _s3.Ok("plugin", "create", "s3://bkt/t8/secret/x.bfi", Path.Combine(vms, "x.vhdx"));
        string root = Directory.CreateDirectory(Dir["t8-local"]).FullName;
        using var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, vms, "--images", root, "--images", "s3://bkt/t8/public/", "--s3-endpoint", _s3.Endpoint, "--read-only");
        Assert.ThrowsAny<Exception>(() => File.ReadAllBytes(Path.Combine(vms, "x.vhdx")));
        daemon.Stop();
        Assert.Contains("lies outside the --images", daemon.Log, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Reads_during_an_outage_fail_with_EIO_and_succeed_after_it_without_a_restart()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        // Incompressible data, larger than the cache's readahead window: what the outage read asks for cannot have
        // been fetched ahead by the first read.
        string p0 = Dir["t9-random.raw"];
        WriteRandom(p0, 48L << 20, seed: 9);
        _s3.Ok("backup", p0, "s3://bkt/t9/full.bfi");
        string vms = Directory.CreateDirectory(Dir["t9-vms"]).FullName;
        string plugin = Path.Combine(vms, "full.img"); // raw: file offset = disk offset
        _s3.Ok("plugin", "create", "s3://bkt/t9/full.bfi", plugin);
        using var relay = new RemoteTcpRelay(_s3.Port);
        using var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, vms, "--images", "s3://bkt/t9/", "--s3-endpoint", $"http://127.0.0.1:{relay.Port}", "--read-only",
            "--cache-dir", Dir["t9-cache"]); // empty: nothing of the image is on this "host" yet
        using (var f = new FileStream(plugin, FileMode.Open, FileAccess.Read, FileShare.Read, 1))
        {
            var head = new byte[4096];
            f.ReadExactly(head); // opened while the store is up: header, trailer and index are read

            relay.Refuse = true; // the store goes down
            var clock = Stopwatch.StartNew();
            var tail = new byte[8 << 20];
            long tailAt = f.Length - tail.Length; // the disk's last 8 MiB: the image's last bytes, not read before
            f.Position = tailAt;
            Exception? e = null;
            try
            {
                f.ReadExactly(tail);
            }
            catch (IOException caught)
            {
                e = caught;
            }

            Assert.True(e != null, $"the read during the outage succeeded after {clock.Elapsed}; relay bytes {relay.BytesUp}\n{daemon.Log}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"the failing read took {clock.Elapsed}");
            Assert.False(daemon.HasExited, daemon.Log);
            // The failure is logged once, naming the object and the offset (the log is written by the daemon: poll briefly).
            Assert.True(
                SpinWait.SpinUntil(() => daemon.Log.Contains("s3://bkt/t9/full.bfi: read of ", StringComparison.Ordinal), TimeSpan.FromSeconds(10)),
                $"no log line names the failed read: {e.Message}\n{daemon.Log}");
            Assert.Contains(" at offset ", daemon.Log, StringComparison.Ordinal);

            relay.Refuse = false; // back: the same read succeeds, nothing to restart
            f.Position = tailAt;
            f.ReadExactly(tail);
        }

        Compare(plugin, p0);
        daemon.Stop();
        S3rverFixture.AssertNoSecret(daemon.Log);
    }

    [SkippableFact]
    public void File_level_backups_in_S3_mount_as_disks_that_hold_the_tree()
    {
        Prerequisite.SkipIf(_s3.Missing);
        Prerequisite.Tool("7zz", "7zip");
        string src = Dir["t10-src"];
        Directory.CreateDirectory(Path.Combine(src, "docs"));
        File.WriteAllText(Path.Combine(src, "docs", "a.txt"), "in the full backup\n");
        WriteRandom(Path.Combine(src, "big.bin"), 300_000, seed: 1);
        _s3.Ok("backup", "--files", src, "s3://bkt/t10/full.bfi");
        File.WriteAllText(Path.Combine(src, "docs", "new.txt"), "only in the incremental\n");
        WriteRandom(Path.Combine(src, "big.bin"), 300_000, seed: 2);
        _s3.Ok("backup", "--files", src, "s3://bkt/t10/inc.bfi", "--parent", "s3://bkt/t10/full.bfi");
        Assert.Contains("OK: 2 image(s)", _s3.Ok("verify", "s3://bkt/t10/inc.bfi").StdOut, StringComparison.Ordinal);
        Assert.Contains("3 files", _s3.Ok("info", "s3://bkt/t10/inc.bfi").StdOut, StringComparison.Ordinal);

        string vms = Directory.CreateDirectory(Dir["t10-vms"]).FullName;
        _s3.Ok("plugin", "create", "s3://bkt/t10/inc.bfi", Path.Combine(vms, "inc.raw"), "--images", "s3://bkt/t10/");
        _s3.Ok("plugin", "create", "--filesystem", "fat32", "s3://bkt/t10/inc.bfi", Path.Combine(vms, "inc-fat32.raw"), "--images", "s3://bkt/t10/");
        _s3.Ok("export", "s3://bkt/t10/inc.bfi", Dir["t10-export.raw"]);
        using var daemon = DaemonProcess.StartWithEnv(vms, _s3.Env, vms, "--images", "s3://bkt/t10/", "--s3-endpoint", _s3.Endpoint, "--read-only");

        // The exFAT disk read through the mount from S3 is the disk export writes; the FAT32 one holds the tree.
        Assert.True(TestDisks.SameContent(Path.Combine(vms, "inc.raw"), Dir["t10-export.raw"]), "the mounted exFAT disk differs from the export");
        string volume = GptDisk.ExtractFirstPartition(Path.Combine(vms, "inc-fat32.raw"), Dir["t10.fat32"]);
        string outDir = Dir["t10-7z"];
        ExternalTool.Check("7zz", "x", "-y", "-o" + outDir, volume);
        foreach (string file in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            string extracted = Path.Combine(outDir, Path.GetRelativePath(src, file));
            Assert.True(File.ReadAllBytes(file).AsSpan().SequenceEqual(File.ReadAllBytes(extracted)), $"{extracted} differs from {file}");
        }

        Assert.Equal(3, Directory.GetFiles(outDir, "*", SearchOption.AllDirectories).Length);
        daemon.Stop();
        S3rverFixture.AssertNoSecret(daemon.Log);
    }

    private static void Compare(string plugin, string raw)
    {
        string format = plugin.EndsWith(".img", StringComparison.Ordinal) ? "raw" : "vhdx";
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", format, "-F", "raw", plugin, raw], TimeSpan.FromMinutes(3));
        Assert.True(compare.ExitCode == 0, $"qemu-img compare {plugin} {raw}: {compare.Output}");
    }

    private static void WriteRandom(string path, long size, int seed)
    {
        var random = new Random(seed);
        byte[] block = new byte[1 << 20];
        using var f = File.Create(path);
        for (long done = 0; done < size; done += block.Length)
        {
            random.NextBytes(block);
            f.Write(block);
        }
    }

    /// <summary>Two points of a small disk: p0, and p1 = p0 with scattered changes.</summary>
    private (string P0, string P1) Disks(string name)
    {
        string p0 = Dir[$"{name}-p0.raw"];
        string p1 = Dir[$"{name}-p1.raw"];
        TestDisks.CreateMixed(p0, DiskSize, seed: name.Sum(c => c));
        File.Copy(p0, p1);
        TestDisks.Scatter(p1, count: 20, seed: 7);
        return (p0, p1);
    }
}
