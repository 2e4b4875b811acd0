using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - Issue 20's "a QEMU boot from each format" for the plugin formats other than .vhdx (BootTests covers that one):
//   one guest disk and its backups per class (GuestBackupsFixture), then per format one boot of a plugin of the
//   incremental, with QEMU's driver for that format (raw, vpc, vmdk) and cache=none. The guest reads the
//   incremental's file and writes one of its own; after the unmount, `backupfuse export --format raw` of the plugin
//   (backup + the guest's changes, read through the same stack) holds the write, which debugfs reads: cheaper than a
//   second boot, and it checks the same thing (the write reached the changes store and is read back).
// - Each format has its own mount directory, so the cases share nothing but the (unchanging) backups.

/// <summary>Issue 20: a guest boots from a .img, .vhd and .vmdk plugin, writes, and its write lands.</summary>
[Collection("mounts")]
public sealed class PluginFormatBootTests : IClassFixture<GuestBackupsFixture>
{
    private readonly GuestBackupsFixture _guest;
    private readonly ITestOutputHelper _output;

    public PluginFormatBootTests(GuestBackupsFixture guest, ITestOutputHelper output)
    {
        _guest = guest;
        _output = output;
    }

    [SkippableTheory]
    [InlineData("img", "raw")]
    [InlineData("vhd", "vpc")]
    [InlineData("vmdk", "vmdk")]
    public void AGuestBootsFromThePluginFormatWritesAndTheWriteLands(string extension, string qemuFormat)
    {
        Prerequisite.SkipIf(_guest.Missing);
        string vms = _guest.Dir["vms-" + extension];
        Directory.CreateDirectory(vms);
        string plugin = Path.Combine(vms, "guest." + extension);
        Cli.Ok("plugin", "create", _guest.IncImage, plugin);
        string hashes = GuestBoot.HashDir(_guest.Images);
        string text = $"written-through-{extension}";

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", _guest.Images))
        {
            var (log, took) = GuestBoot.Boot($"file={plugin},format={qemuFormat},cache=none,aio=threads", _guest.Dir[extension + ".log"], "bf.write=" + text);
            _output.WriteLine($"boot from .{extension} (format={qemuFormat}): {took.TotalSeconds:F1} s");
            Assert.Contains("BFGUEST-FILE:from-incremental", log, StringComparison.Ordinal);
            Assert.Contains("BFGUEST-WROTE", log, StringComparison.Ordinal);
        }

        Assert.False(MountTable.IsMounted(vms));
        Assert.Equal(hashes, GuestBoot.HashDir(_guest.Images));
        string flat = _guest.Dir[extension + "-flat.raw"];
        Cli.Ok("export", plugin, flat, "--format", "raw");
        Assert.Contains(text, GuestBoot.ReadGuestFile(flat, "/root/bf-written.txt"), StringComparison.Ordinal);
        Assert.Contains("from-incremental", GuestBoot.ReadGuestFile(flat, "/etc/bf-check"), StringComparison.Ordinal);
        File.Delete(flat);
    }
}
