using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 5: a real guest boots from a backup through the mount. A small bootable disk (Debian kernel, busybox,
/// extlinux; scripts/guest) is backed up (full, then an incremental after changing a file), mounted, and booted
/// with QEMU from the plugin VHDX. The guest reads the incremental's file and writes a new one; after a remount a
/// second boot sees it, the backups are unchanged, and the flattened export and the file-recovery recipe show it.
/// </summary>
[Collection("mounts")]
public sealed class BootTests : IDisposable
{
    private static readonly string Repo = GuestBoot.Repo;
    private readonly TempDirectory _dir = new("bfboot");

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public void AVmBootsFromTheBackupWritesAndSeesItsWriteAfterARemount()
    {
        Prerequisite.SkipIf(GuestBoot.Missing());
        string images = _dir["images"];
        string vms = _dir["vms"];
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(vms);
        string disk = _dir["guest.raw"];
        Script("guest/make-boot-disk.sh", [disk, "128"], ("BF_CHECK_CONTENT", "full-backup"));
        Cli.Ok("backup", disk, Path.Combine(images, "guest-full.bfi"));
        Script("guest/set-check-file.sh", [disk, "from-incremental"]);
        Cli.Ok("backup", disk, Path.Combine(images, "guest-inc.bfi"), "--parent", Path.Combine(images, "guest-full.bfi"));
        string plugin = Path.Combine(vms, "guest.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(images, "guest-inc.bfi"), plugin);
        string hashes = GuestBoot.HashDir(images);

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", images))
        {
            string log = Boot(plugin, "first.log", "bf.write=written-by-the-guest");
            Assert.Contains("BFGUEST-FILE:from-incremental", log, StringComparison.Ordinal);
            Assert.Contains("BFGUEST-WROTE", log, StringComparison.Ordinal);
        }

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", images))
        {
            string log = Boot(plugin, "second.log", null);
            Assert.Contains("BFGUEST-SEEN:written-by-the-guest", log, StringComparison.Ordinal);

            // File-level recovery without booting: the documented qemu-storage-daemon recipe, run as written.
            var recovered = Script("recover-file.sh", [plugin, "/root/bf-written.txt", _dir["recovered.txt"]]);
            Assert.True(recovered.ExitCode == 0, recovered.Output);
            Assert.Equal("written-by-the-guest", File.ReadAllText(_dir["recovered.txt"]).Trim());
        }

        Assert.Equal(hashes, GuestBoot.HashDir(images));

        // The flattened export (backup + the guest's changes) holds the file too; debugfs reads it without mounting.
        Cli.Ok("export", plugin, _dir["flat.raw"]);
        var cat = ExternalTool.Run("debugfs", ["-R", "cat /root/bf-written.txt", _dir["flat.raw"] + "?offset=1048576"]);
        Assert.Contains("written-by-the-guest", cat.StdOut, StringComparison.Ordinal);
        var pristine = ExternalTool.Run("debugfs", ["-R", "cat /etc/bf-check", _dir["flat.raw"] + "?offset=1048576"]);
        Assert.Contains("from-incremental", pristine.StdOut, StringComparison.Ordinal);
    }

    private string Boot(string plugin, string logName, string? append)
    {
        var args = new List<string> { "--drive", $"file={plugin},format=vhdx,cache=none,aio=threads", "--log", _dir[logName], "--timeout", "240" };
        if (append != null)
        {
            args.Add("--append-extra");
            args.Add(append);
        }

        var r = Script("guest/boot-vm.sh", [.. args]);
        string log = File.Exists(_dir[logName]) ? File.ReadAllText(_dir[logName]).Replace("\r", string.Empty, StringComparison.Ordinal) : string.Empty;
        Assert.True(r.ExitCode == 0, $"boot-vm.sh exited {r.ExitCode}: {r.Output}\n{log}");
        Assert.Contains("BFGUEST-BOOTED", log, StringComparison.Ordinal);
        Assert.DoesNotContain("BFGUEST-ERROR", log, StringComparison.Ordinal);
        return log;
    }

    private static ToolResult Script(string name, string[] args, params (string Key, string Value)[] env)
    {
        var r = ExternalTool.Run(Path.Combine(Repo, "scripts", name), args, TimeSpan.FromMinutes(8), env.ToDictionary(e => e.Key, e => e.Value));
        return name.StartsWith("guest/make", StringComparison.Ordinal) || name.StartsWith("guest/set", StringComparison.Ordinal)
            ? (r.ExitCode == 0 ? r : throw new InvalidOperationException($"{name} exited {r.ExitCode}: {r.Output}"))
            : r;
    }
}
