using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 20: `backupfuse export --format qcow2` through the real CLI, with QEMU as the oracle: qemu-img check is clean
/// and qemu-img compare finds it identical to the raw export, for a sparse disk beyond 4 GiB whose size is not a
/// multiple of the cluster (nor of the sector) size, and for a plugin with what a VM wrote (backup + changes).
/// </summary>
[Collection("mounts")]
public sealed class Qcow2ExportTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfq2");

    public void Dispose()
    {
        if (MountTable.IsMounted(_dir["vms"]))
        {
            ExternalTool.Run("umount", ["-l", _dir["vms"]]);
        }

        _dir.Dispose();
    }

    [SkippableFact]
    public void ASparseDiskBeyond4GiBExportsAsAQcow2IdenticalToTheRawExport()
    {
        Prerequisite.Tool("qemu-img", "qemu-utils");
        long size = (5L << 30) + 12345; // past 4 GiB, neither whole clusters nor whole sectors
        string disk = _dir["disk.raw"];
        using (var h = File.OpenHandle(disk, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.SetLength(h, size);
            var rng = new Random(20);
            foreach (long at in new[] { 0L, (1L << 30) - 3000, (4L << 30) - 70000, (4L << 30) + 7, size - 9000 })
            {
                var data = new byte[rng.Next(9000, 200_000)];
                rng.NextBytes(data);
                RandomAccess.Write(h, data.AsSpan(0, (int)Math.Min(data.Length, size - at)), at);
            }
        }

        Cli.Ok("backup", disk, _dir["disk.bfi"]);
        Cli.Ok("export", _dir["disk.bfi"], _dir["out.qcow2"], "--format", "qcow2");
        Cli.Ok("export", _dir["disk.bfi"], _dir["out.raw"]);

        AssertSameDisk(_dir["out.qcow2"], _dir["out.raw"]);
        Assert.Contains($"virtual size: 5 GiB ({(size + 511) & ~511L} bytes)", ExternalTool.Check("qemu-img", "info", _dir["out.qcow2"]).StdOut, StringComparison.Ordinal);
        Assert.True(new FileInfo(_dir["out.qcow2"]).Length < 8L << 20, "holes were stored"); // data ~1 MiB + tables
    }

    [SkippableFact]
    public void APluginExportsBackupPlusChangesAsQcow2()
    {
        Prerequisite.Tool("qemu-io", "qemu-utils");
        long size = (40L << 20) + (3 * 512); // whole sectors, not whole clusters
        string images = _dir["images"];
        string vms = _dir["vms"];
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(vms);
        TestDisks.CreateMixed(_dir["disk.raw"], size, seed: 22);
        Cli.Ok("backup", _dir["disk.raw"], Path.Combine(images, "disk.bfi"));
        string plugin = Path.Combine(vms, "disk.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(images, "disk.bfi"), plugin);
        using (DaemonProcess.Start(vms, vms, "--images", images))
        {
            // Data over data, zeros over data (those clusters need not be stored), data in the last partial cluster.
            var r = ExternalTool.Run("qemu-io", ["-f", "vhdx", "-c", "write -P 0x5a 1M 200k", "-c", "write -z 8M 1M", "-c", $"write -P 0x6b {size - 1024} 1024", plugin]);
            Assert.True(r.ExitCode == 0 && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase), r.Output);
            ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", plugin, _dir["guest.raw"]);
        }

        Cli.Ok("export", plugin, _dir["plugin.qcow2"], "--format", "qcow2", "--images", images);
        Cli.Ok("export", plugin, _dir["plugin.raw"], "--images", images);
        AssertSameDisk(_dir["plugin.qcow2"], _dir["plugin.raw"]);
        AssertSameDisk(_dir["plugin.qcow2"], _dir["guest.raw"]); // what the guest saw through the mount
        var read = ExternalTool.Run("qemu-io", ["-f", "qcow2", "-r", "-c", "read -P 0x5a 1M 200k", "-c", "read -P 0 8M 1M", "-c", $"read -P 0x6b {size - 1024} 1024", _dir["plugin.qcow2"]]);
        Assert.True(read.ExitCode == 0 && !read.Output.Contains("fail", StringComparison.OrdinalIgnoreCase), read.Output);
    }

    [Fact]
    public void Qcow2ToStandardOutputIsRefusedAndAnUnknownFormatNamesQcow2()
    {
        TestDisks.CreateMixed(_dir["small.raw"], 4L << 20, seed: 3);
        Cli.Ok("backup", _dir["small.raw"], _dir["small.bfi"]);
        var r = Cli.Run("export", _dir["small.bfi"], "-", "--format", "qcow2");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--format qcow2 cannot be written to standard output", r.StdErr, StringComparison.Ordinal);
        Assert.Single(r.StdErr.Trim().Split('\n'));
        Assert.Empty(r.StdOut);

        r = Cli.Run("export", _dir["small.bfi"], _dir["x.img"], "--format", "qcow3");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("valid formats: raw, vhdx, qcow2", r.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir["x.img"]));
    }

    private static void AssertSameDisk(string qcow2, string raw)
    {
        var check = ExternalTool.Run("qemu-img", ["check", "-f", "qcow2", qcow2]);
        Assert.True(check.ExitCode == 0 && check.StdOut.Contains("No errors were found", StringComparison.Ordinal), check.Output);
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", qcow2, raw]);
        Assert.True(compare.ExitCode == 0, compare.Output);
    }
}
