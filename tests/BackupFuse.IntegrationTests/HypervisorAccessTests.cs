using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 20, what a hypervisor running as its own user needs from the mount (real mounts, real users, qemu-io):
/// --owner/--mode present plugins to that user (with --allow-other), a chown/chmod through the mount (libvirt's
/// dynamic_ownership) is kept in memory and never breaks the plugin nor the owner rule, and QEMU's host-cache modes
/// (cache=none = O_DIRECT, aio=native, aio=io_uring) write and read back. The cache-mode test is parametrised by the
/// plugin file name so other plugin formats can join it.
/// </summary>
[Collection("mounts")]
public sealed class HypervisorAccessTests : IDisposable
{
    /// <summary>A system user standing in for libvirt-qemu (created once; no dependency on libvirt being installed).</summary>
    private const string VmUser = "bfuse-vm";

    /// <summary>Another user, who must not get in.</summary>
    private const string OtherUser = "nobody";

    private const long DiskSize = 16L << 20;
    private readonly TempDirectory _dir = new("bfhyp");
    private readonly string _images;
    private readonly string _vms;
    private readonly string _image;

    public HypervisorAccessTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        TestDisks.CreateMixed(_dir["disk.raw"], DiskSize, seed: 20);
        _image = Path.Combine(_images, "disk.bfi");
        Cli.Ok("backup", _dir["disk.raw"], _image);

        // Backups as they usually are: root's, readable by root only; the directories on the way searchable.
        ExternalTool.Check("chmod", "0755", _dir.Path, _images, _vms);
        ExternalTool.Check("chmod", "0600", _image);
    }

    public void Dispose()
    {
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    /// <summary>The plugin kinds QEMU opens, as (plugin file name, QEMU format): every plugin format.</summary>
    public static TheoryData<string, string, string> CacheModes()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var (plugin, format) in new[] { ("disk.vhdx", "vhdx"), ("disk.img", "raw"), ("disk.vhd", "vpc"), ("disk.vmdk", "vmdk") })
        {
            data.Add(plugin, format, "none");      // cache=none: O_DIRECT opens, aio=threads
            data.Add(plugin, format, "native");    // cache=none,aio=native (Linux AIO needs O_DIRECT)
            data.Add(plugin, format, "io_uring");  // cache=none,aio=io_uring
            data.Add(plugin, format, "io_uring-cached"); // aio=io_uring through the page cache (cache=writeback)
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CacheModes))]
    public void QemuHostCacheModesWriteAndReadBack(string pluginName, string format, string mode)
    {
        string plugin = Plugin(pluginName);
        string[] flags = mode switch
        {
            "none" => ["-t", "none", "-n"],
            "native" => ["-t", "none", "-n", "-i", "native"],
            "io_uring" => ["-t", "none", "-n", "-i", "io_uring"],
            _ => ["-i", "io_uring"],
        };
        if (mode.StartsWith("io_uring", StringComparison.Ordinal))
        {
            string disabled = File.Exists("/proc/sys/kernel/io_uring_disabled") ? File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() : "0";
            Prerequisite.SkipIf(disabled == "0" ? null : $"io_uring is disabled on this kernel (kernel.io_uring_disabled={disabled})");
        }

        using var daemon = Mount();

        // Unaligned and aligned writes, one across the 1 MiB request limit, each read back in the same process.
        var result = QemuIo(plugin, format, flags,
            "write -P 0x5a 0 64k", "write -P 0x6b 1000 3000", $"write -P 0x7c {DiskSize - (3 << 20)} 2M", "flush",
            "read -P 0x5a 0 1000", "read -P 0x6b 1000 3000", "read -P 0x5a 4000 61536", $"read -P 0x7c {DiskSize - (3 << 20)} 2M");
        Assert.True(result.ExitCode == 0, $"qemu-io {mode} on {pluginName}: {result.Output}\n{daemon.Log}");

        // Another process through the page cache sees the same bytes; the image stays consistent.
        result = QemuIo(plugin, format, [], "read -P 0x6b 1000 3000", $"read -P 0x7c {DiskSize - (3 << 20)} 2M");
        Assert.True(result.ExitCode == 0, $"cached read-back after {mode}: {result.Output}");
        if (format is "vhdx" or "vmdk")
        {
            // qemu-img has no check for raw and vpc.
            var check = ExternalTool.Run("qemu-img", ["check", "-T", mode == "io_uring-cached" ? "writeback" : "none", "-f", format, plugin]);
            Assert.True(check.ExitCode == 0 && check.StdOut.Contains("No errors were found", StringComparison.Ordinal), check.Output);
        }
    }

    [Fact]
    public void AChownThroughTheMountIsShownAndThePluginKeepsServingUnderItsRealOwner()
    {
        EnsureUser(VmUser);
        string plugin = Plugin("disk.vhdx");
        string before = OwnerAndMode(plugin);
        using (var daemon = Mount())
        {
            Assert.Equal(0, QemuIo(plugin, "vhdx", [], "write -P 0x11 1M 64k").ExitCode);

            // What libvirt's dynamic_ownership does when a domain starts: chown (and a chmod) to the qemu user.
            ExternalTool.Check("chown", $"{VmUser}:{VmUser}", plugin);
            ExternalTool.Check("chmod", "0600", plugin);
            Assert.Equal($"{Id("-u", VmUser)}:{Id("-g", VmUser)}:600", OwnerAndMode(plugin));

            // Served as before: the owner rule still looks at the plugin file's real owner (root), who may read the
            // root-only backup, and the changes stay his. Before, the chown reached the file and every open failed
            // with EACCES ("the plugin's owner cannot read the backup itself").
            var r = QemuIo(plugin, "vhdx", [], "read -P 0x11 1M 64k", "write -P 0x22 2M 4k", "read -P 0x22 2M 4k");
            Assert.True(r.ExitCode == 0, $"after the chown: {r.Output}\n{daemon.Log}");
            var asVm = As(VmUser, "qemu-io", "-f", "vhdx", "-c", "read -P 0x22 2M 4k", plugin);
            Assert.NotEqual(0, asVm.ExitCode); // no --allow-other: nobody but root gets in, whatever the mount shows

            // And back when the domain stops.
            ExternalTool.Check("chown", "0:0", plugin);
            ExternalTool.Check("chmod", "0644", plugin);
            Assert.Equal("0:0:644", OwnerAndMode(plugin));
            Assert.Equal(0, QemuIo(plugin, "vhdx", [], "read -P 0x22 2M 4k").ExitCode);
            Assert.DoesNotContain("cannot read the backup itself", daemon.Log, StringComparison.Ordinal);
        }

        // Nothing reached the files: the plugin and its changes are root's as before, and the writes are there.
        Assert.Equal(before, OwnerAndMode(plugin));
        Assert.StartsWith("0:0:", OwnerAndMode(Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx")), StringComparison.Ordinal);
        using (Mount())
        {
            Assert.Equal(before, OwnerAndMode(plugin)); // an unmount forgets what was set through the mount
            Assert.Equal(0, QemuIo(plugin, "vhdx", [], "read -P 0x11 1M 64k", "read -P 0x22 2M 4k").ExitCode);
        }
    }

    [Fact]
    public void OwnerAndModeLetTheVmUserOpenPluginsWithAllowOtherAndNobodyElse()
    {
        EnsureUser(VmUser);
        string plugin = Plugin("disk.vhdx");
        File.WriteAllText(Path.Combine(_vms, "notes.txt"), "plain");
        string uid = Id("-u", VmUser);
        string gid = Id("-g", VmUser);
        using (var daemon = Mount("--allow-other", "--owner", VmUser, "--mode", "0660"))
        {
            Assert.Equal($"{uid}:{gid}:660", OwnerAndMode(plugin));
            Assert.Equal("0:0:644", OwnerAndMode(Path.Combine(_vms, "notes.txt"))); // only virtual files are presented

            // The VM user opens the root-only backup through the root-owned plugin, reads, writes and reads back.
            var r = As(VmUser, "qemu-io", "-f", "vhdx", "-t", "none", "-n", "-c", "write -P 0x33 3M 64k", "-c", "read -P 0x33 3M 64k", plugin);
            Assert.True(r.ExitCode == 0 && !r.Output.Contains("fail", StringComparison.OrdinalIgnoreCase), $"{r.Output}\n{daemon.Log}");

            // Anybody else is refused by the presented mode (the kernel checks it: default_permissions).
            var other = As(OtherUser, "qemu-io", "-f", "vhdx", "-r", "-c", "read 0 4k", plugin);
            Assert.True(other.ExitCode != 0 && other.Output.Contains("Permission denied", StringComparison.Ordinal), other.Output);

            // libvirt's chown to its user and back changes only what the mount shows.
            ExternalTool.Check("chown", "0:0", plugin);
            Assert.Equal("0:0:660", OwnerAndMode(plugin));
            Assert.NotEqual(0, As(VmUser, "qemu-io", "-f", "vhdx", "-r", "-c", "read 0 4k", plugin).ExitCode);
            ExternalTool.Check("chown", $"{VmUser}:{VmUser}", plugin);
            Assert.Equal(0, As(VmUser, "qemu-io", "-f", "vhdx", "-r", "-c", "read -P 0x33 3M 64k", plugin).ExitCode);
        }

        Assert.Equal("0:0:644", OwnerAndMode(plugin));

        // Without --allow-other the same options let nobody else in, and the daemon says so.
        using (var daemon = Mount("--owner", $"{VmUser}:{VmUser}", "--mode", "0666"))
        {
            Assert.Equal($"{uid}:{gid}:666", OwnerAndMode(plugin));
            var r = As(VmUser, "qemu-io", "-f", "vhdx", "-r", "-c", "read 0 4k", plugin);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("without --allow-other: only the user who mounted", daemon.Log, StringComparison.Ordinal);
        }

        // A read-only mount never shows write bits, whatever --mode says.
        using (Mount("--read-only", "--mode", "0666"))
        {
            Assert.EndsWith(":444", OwnerAndMode(plugin), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--owner", "no-such-user-bf", "--owner no-such-user-bf: no such user 'no-such-user-bf'")]
    [InlineData("--owner", "root:no-such-group-bf", "--owner root:no-such-group-bf: no such group 'no-such-group-bf'")]
    [InlineData("--mode", "0888", "--mode 0888: give octal permission bits from 0 to 0777")]
    [InlineData("--mode", "4755", "--mode 4755: give octal permission bits from 0 to 0777")]
    public void BadOwnerOrModeIsAUsageError(string option, string value, string message)
    {
        var r = Cli.Run("mount", _vms, "--images", _images, option, value, "--foreground");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.StdErr, StringComparison.Ordinal);
        Assert.False(MountTable.IsMounted(_vms));
    }

    private string Plugin(string name)
    {
        string plugin = Path.Combine(_vms, name);
        Cli.Ok("plugin", "create", _image, plugin);
        ExternalTool.Check("chmod", "0644", plugin);
        return plugin;
    }

    private DaemonProcess Mount(params string[] extra) => DaemonProcess.Start(_vms, [_vms, "--images", _images, .. extra]);

    private static ToolResult QemuIo(string plugin, string format, string[] flags, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        args.AddRange(flags);
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(plugin);
        var r = ExternalTool.Run("qemu-io", args);
        bool ok = r.ExitCode == 0 && !r.Output.Contains("Pattern verification failed", StringComparison.Ordinal) && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase);
        return ok ? r : r with { ExitCode = r.ExitCode == 0 ? 1 : r.ExitCode };
    }

    private static string OwnerAndMode(string path) => ExternalTool.Check("stat", "-c", "%u:%g:%a", path).StdOut.Trim();

    private static string Id(string which, string user) => ExternalTool.Check("id", which, user).StdOut.Trim();

    private static void EnsureUser(string user)
    {
        if (ExternalTool.Run("id", ["-u", user]).ExitCode != 0)
        {
            ExternalTool.Check("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", user);
        }
    }

    private static ToolResult As(string user, string program, params string[] args)
    {
        var r = ExternalTool.Run("setpriv", ["--reuid", user, "--regid", Id("-g", user), "--init-groups", "--", program, .. args], TimeSpan.FromMinutes(1));
        bool ok = r.ExitCode == 0 && !r.Output.Contains("Pattern verification failed", StringComparison.Ordinal) && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase);
        return ok ? r : r with { ExitCode = r.ExitCode == 0 ? 1 : r.ExitCode };
    }
}
