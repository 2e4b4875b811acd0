using System.Diagnostics;
using System.Globalization;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - The BootTests scenario through libvirt instead of a bare QEMU: the small guest of scripts/guest is backed up, its
//   plugin is the disk of a TCG domain (<driver type='vhd'/>, cache=none, io=native) on a mount with --allow-other, the
//   guest writes a file and powers off (on_poweroff destroy: the domain shuts off), the mount is remounted, a second
//   boot sees the file. The guest's serial console goes to a file (<serial type='file'>), read for its markers; the
//   write request goes in as fw_cfg opt/bf.cmdline (<sysinfo type='fwcfg'>), as boot-vm.sh hands it to QEMU.
// - A VM boot (TCG, some 10-60 s each): run by the lead's full runs, not by the per-class runs of the engineers.

/// <summary>Issue 20: a guest boots from a plugin as a libvirt domain, writes, and sees its write after a remount.</summary>
[Collection("mounts")]
public sealed class LibvirtBootTests : IClassFixture<LibvirtDaemon>, IDisposable
{
    private static readonly string Repo = GuestBoot.Repo;
    private readonly LibvirtDaemon _libvirt;
    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _dir = new("bfvirtboot");
    private readonly string _name = $"bf-boot-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";

    public LibvirtBootTests(LibvirtDaemon libvirt, ITestOutputHelper output)
    {
        _libvirt = libvirt;
        _output = output;
    }

    public void Dispose()
    {
        LibvirtDaemon.RemoveDomain(_name);
        if (MountTable.IsMounted(_dir["vms"]))
        {
            ExternalTool.Run("umount", ["-l", _dir["vms"]]);
        }

        _dir.Dispose();
    }

    [SkippableFact]
    public void AGuestBootsFromThePluginAsALibvirtDomainWritesAndSeesItsWriteAfterARemount()
    {
        Prerequisite.SkipIf(_libvirt.Problem);
        Prerequisite.SkipIf(GuestBoot.Missing());
        string images = _dir["images"];
        string vms = _dir["vms"];
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(vms);
        ExternalTool.Check("chmod", "0755", _dir.Path, vms);
        string disk = _dir["guest.raw"];
        Script("guest/make-boot-disk.sh", [disk, "128"], ("BF_CHECK_CONTENT", "from-the-backup"));
        Cli.Ok("backup", disk, Path.Combine(images, "guest.bfi"));
        ExternalTool.Check("chmod", "0600", Path.Combine(images, "guest.bfi"));
        string plugin = Path.Combine(vms, "guest.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(images, "guest.bfi"), plugin);
        string hashes = GuestBoot.HashDir(images);

        // The serial log and the fw_cfg file live where libvirt-qemu may reach them (QEMU opens the fw_cfg file itself).
        string shared = _dir["shared"];
        Directory.CreateDirectory(shared);
        ExternalTool.Check("chmod", "0755", shared);
        string request = Path.Combine(shared, "bf.cmdline");
        File.WriteAllText(request, "bf.write=written-under-libvirt");
        ExternalTool.Check("chmod", "0644", request);

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", images, "--allow-other"))
        {
            string log = Boot(plugin, Path.Combine(shared, "first.log"), request);
            Assert.Contains("BFGUEST-FILE:from-the-backup", log, StringComparison.Ordinal);
            Assert.Contains("BFGUEST-WROTE", log, StringComparison.Ordinal);
        }

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", images, "--allow-other"))
        {
            string log = Boot(plugin, Path.Combine(shared, "second.log"), firmwareConfigFile: null);
            Assert.Contains("BFGUEST-SEEN:written-under-libvirt", log, StringComparison.Ordinal);
        }

        Assert.Equal(hashes, GuestBoot.HashDir(images));
        Assert.Equal("0:0:644", ExternalTool.Check("stat", "-c", "%u:%g:%a", plugin).StdOut.Trim());
    }

    /// <summary>Defines the domain, starts it, waits until the guest has powered off, and returns its console output.</summary>
    private string Boot(string plugin, string serialLog, string? firmwareConfigFile)
    {
        LibvirtDaemon.RemoveDomain(_name);
        string xml = _dir[Path.GetFileName(serialLog) + ".xml"];
        File.WriteAllText(xml, LibvirtTests.DomainXml(_name, plugin, "vhd", serialLog, memoryMiB: 512, firmwareConfigFile: firmwareConfigFile));
        LibvirtDaemon.VirshOk("define", xml);
        LibvirtDaemon.VirshOk("start", _name);
        var clock = Stopwatch.StartNew();
        while (LibvirtDaemon.Virsh("domstate", _name).StdOut.Trim() != "shut off")
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(4))
            {
                LibvirtDaemon.Virsh("destroy", _name);
                Assert.Fail($"the guest did not power off within 4 minutes: {ReadLog(serialLog)}");
            }

            Thread.Sleep(500);
        }

        _output.WriteLine($"libvirt boot ({Path.GetFileName(serialLog)}): {clock.Elapsed.TotalSeconds:F1} s from start to shut off");
        LibvirtDaemon.VirshOk("undefine", _name);
        string log = ReadLog(serialLog);
        Assert.Contains("BFGUEST-BOOTED", log, StringComparison.Ordinal);
        Assert.Contains("BFGUEST-POWEROFF", log, StringComparison.Ordinal);
        Assert.DoesNotContain("BFGUEST-ERROR", log, StringComparison.Ordinal);
        return log;
    }

    private static string ReadLog(string path) =>
        File.Exists(path) ? File.ReadAllText(path).Replace("\r", string.Empty, StringComparison.Ordinal) : "(no console output)";

    private static void Script(string name, string[] args, params (string Key, string Value)[] env)
    {
        var r = ExternalTool.Run(Path.Combine(Repo, "scripts", name), args, TimeSpan.FromMinutes(8), env.ToDictionary(e => e.Key, e => e.Value));
        Assert.True(r.ExitCode == 0, $"{name} exited {r.ExitCode}: {r.Output}");
    }
}
