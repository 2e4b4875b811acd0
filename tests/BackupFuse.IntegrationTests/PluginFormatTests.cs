using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 20, plugin formats, through real mounts: a plugin named .img/.raw, .vhd or .vmdk reads as that native format
/// of its backup point (qemu-img info/compare/check, vhdiinfo, vmdkinfo, 7-Zip), QEMU's writes through that format land
/// in the plugin's changes store, survive a remount and are dropped by reset; export flattens them; --read-only and
/// --volatile behave as for .vhdx; a .vhdx and an .img plugin of one point in one directory keep separate changes.
/// </summary>
[Collection("mounts")]
public sealed class PluginFormatTests : IDisposable
{
    // 39069 sectors: not a multiple of the VMDK grain (128 sectors) nor of 4 KiB, and an odd sector count.
    private const long DiskSize = (39069L * 512);
    private readonly TempDirectory _dir = new("bfformat");
    private readonly string _images;
    private readonly string _vms;
    private readonly string _imageHash;

    public PluginFormatTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        TestDisks.CreateMixed(_dir["disk.raw"], DiskSize, seed: 20);
        Cli.Ok("backup", _dir["disk.raw"], Path.Combine(_images, "disk.bfi"));
        _imageHash = HashImages();
    }

    public static TheoryData<string, string> Formats => new()
    {
        { "img", "raw" },
        { "raw", "raw" },
        { "vhd", "vpc" },
        { "vmdk", "vmdk" },
    };

    public void Dispose()
    {
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    [SkippableTheory]
    [MemberData(nameof(Formats))]
    public void APluginReadsAsItsNativeFormat(string extension, string qemuFormat)
    {
        Prerequisite.Tool("vmdkinfo", "libvmdk-utils");
        string plugin = CreatePlugin("web." + extension);
        using var daemon = Mount();
        long expectedLength = extension switch
        {
            "vhd" => DiskSize + 512,
            "vmdk" => 128 * 512 + (((DiskSize + 65535) / 65536) * 65536), // one metadata grain, then every grain
            _ => DiskSize,
        };
        Assert.Equal(expectedLength, new FileInfo(plugin).Length);

        using (var json = JsonDocument.Parse(ExternalTool.Check("qemu-img", "info", "--output=json", "-f", qemuFormat, plugin).StdOut))
        {
            Assert.Equal(qemuFormat, json.RootElement.GetProperty("format").GetString());
            Assert.Equal(DiskSize, json.RootElement.GetProperty("virtual-size").GetInt64());
        }

        Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", qemuFormat, "-F", "raw", plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        switch (extension)
        {
            case "vmdk":
                // QEMU probes it by its magic, as libvirt's storage pools do.
                Assert.Contains("file format: vmdk", ExternalTool.Check("qemu-img", "info", plugin).StdOut, StringComparison.Ordinal);
                Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", "-f", "vmdk", plugin).StdOut, StringComparison.Ordinal);
                string vmdkinfo = ExternalTool.Check("vmdkinfo", plugin).StdOut;
                Assert.Contains("Monolithic sparse", vmdkinfo, StringComparison.Ordinal);
                Assert.Contains($"({DiskSize} bytes)", vmdkinfo, StringComparison.Ordinal);
                Assert.Contains("Everything is Ok", ExternalTool.Check("7zz", "t", plugin).StdOut, StringComparison.Ordinal);
                break;
            case "vhd":
                string vhdiinfo = ExternalTool.Check("vhdiinfo", plugin).StdOut;
                Assert.Contains("Disk type\t\t: Fixed", vhdiinfo, StringComparison.Ordinal);
                Assert.Contains($"({DiskSize} bytes)", vhdiinfo, StringComparison.Ordinal);
                Assert.Contains("Everything is Ok", ExternalTool.Check("7zz", "t", plugin).StdOut, StringComparison.Ordinal);
                break;
        }

        // QEMU opening the disk read-write and closing it without a guest write writes nothing (no dirty flag in any
        // of these formats): no changes file appears.
        QemuIo(qemuFormat, plugin, "read 0 4096", "flush");

        // The bytes are the same on every mount (identities derive from the backup point).
        string first = Hash(plugin);
        daemon.Stop();
        using var again = Mount();
        Assert.Equal(first, Hash(plugin));
        Assert.False(Directory.Exists(Path.Combine(_vms, ".backupfuse")), "reading created the changes");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QemuWritesLandInTheChangesSurviveARemountAndResetDropsThem(string extension, string qemuFormat)
    {
        string plugin = CreatePlugin("web." + extension);
        string header = string.Empty;
        using (var daemon = Mount())
        {
            QemuIo(qemuFormat, plugin, "write -P 0x5a 0 64K", "write -P 0xa5 70000 3000", $"write -P 0x77 {DiskSize - 512} 512");
            QemuIo(qemuFormat, plugin, "read -P 0x5a 0 64K", "read -P 0xa5 70000 3000", $"read -P 0x77 {DiskSize - 512} 512");
            Assert.True(File.Exists(Path.Combine(_vms, ".backupfuse", $"web.{extension}-changes.vhdx")), "no changes file");
            Assert.True(File.Exists(Path.Combine(_vms, ".backupfuse", $"web.{extension}-base.vhdx")), "no base view");
            if (extension == "vmdk")
            {
                // QEMU rewrote the descriptor (a new CID) on its first write: kept as written.
                header = ReadHead(plugin);
                Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", "-f", "vmdk", plugin).StdOut, StringComparison.Ordinal);

                // The grain directory (sector 21 on: the redundant one) takes only its own bytes: EROFS otherwise.
                using var h = File.OpenHandle(plugin, FileMode.Open, FileAccess.ReadWrite);
                var gd = new byte[512];
                RandomAccess.Read(h, gd, 21 * 512);
                RandomAccess.Write(h, gd, 21 * 512);
                gd[0] ^= 0xFF;
                var refused = Assert.ThrowsAny<IOException>(() => RandomAccess.Write(h, gd, 21 * 512));
                Assert.Contains("Read-only file system", refused.Message, StringComparison.Ordinal);
            }

            ExternalTool.Check("qemu-img", "convert", "-f", qemuFormat, "-O", "raw", plugin, _dir["guest.raw"]);
        }

        using (var daemon = Mount())
        {
            QemuIo(qemuFormat, plugin, "read -P 0x5a 0 64K", "read -P 0xa5 70000 3000", $"read -P 0x77 {DiskSize - 512} 512");
            if (extension == "vmdk")
            {
                Assert.Equal(header, ReadHead(plugin));
                Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", "-f", "vmdk", plugin).StdOut, StringComparison.Ordinal);
            }
        }

        // Unmounted: export takes the disk the guest saw, info counts the changes, reset drops them.
        Cli.Ok("export", plugin, _dir["flat.raw"], "--format", "raw");
        Assert.True(TestDisks.SameContent(_dir["guest.raw"], _dir["flat.raw"]), "export differs from what QEMU read through the plugin");
        Assert.Contains("of the disk changed", Cli.Ok("info", plugin).StdOut, StringComparison.Ordinal);
        Cli.Ok("reset", plugin);
        Assert.False(File.Exists(Path.Combine(_vms, ".backupfuse", $"web.{extension}-changes.vhdx")));
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", qemuFormat, "-F", "raw", plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        }

        Assert.Equal(_imageHash, HashImages());
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void AReadOnlyMountRefusesWritesAndAVolatileOneKeepsNothing(string extension, string qemuFormat)
    {
        string plugin = CreatePlugin("web." + extension);
        using (var daemon = Mount("--read-only"))
        {
            var r = ExternalTool.Run("qemu-io", ["-f", qemuFormat, "-c", "write 0 4096", plugin]);
            Assert.Contains("Read-only file system", r.Output, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(Path.Combine(_vms, ".backupfuse")));
        using (var daemon = Mount("--volatile"))
        {
            QemuIo(qemuFormat, plugin, "write -P 0x44 0 64K");
            QemuIo(qemuFormat, plugin, "read -P 0x44 0 64K");
            daemon.Stop();
        }

        Assert.False(Directory.Exists(Path.Combine(_vms, ".backupfuse")));
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", qemuFormat, "-F", "raw", plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void AWriteIntoTheRoundedUpLastSectorOfAnOddDiskIsKept(string extension, string qemuFormat)
    {
        // A disk of 1000003 bytes shows as 1000448 (whole sectors); the last sector's bytes past the backup live in the
        // VHDX's patch store, through every format's view of it.
        TestDisks.CreateMixed(_dir["odd.raw"], 1000003, seed: 3);
        Cli.Ok("backup", _dir["odd.raw"], Path.Combine(_images, "odd.bfi"));
        string plugin = Path.Combine(_vms, "odd." + extension);
        Cli.Ok("plugin", "create", Path.Combine(_images, "odd.bfi"), plugin);
        using (var daemon = Mount())
        {
            QemuIo(qemuFormat, plugin, "write -P 0x3d 999936 512");
        }

        using (var daemon = Mount())
        {
            QemuIo(qemuFormat, plugin, "read -P 0x3d 999936 512");
        }

        Cli.Ok("export", plugin, _dir["odd-out.raw"]);
        var exported = File.ReadAllBytes(_dir["odd-out.raw"]);
        Assert.Equal(1000448, exported.Length);
        Assert.All(exported[999936..], b => Assert.Equal(0x3d, b));
    }

    [Fact]
    public void AVhdxAndAnImgPluginOfOnePointKeepSeparateChanges()
    {
        string vhdx = CreatePlugin("web.vhdx");
        string img = CreatePlugin("web.img");
        using (var daemon = Mount())
        {
            QemuIo("raw", img, "write -P 0x99 0 1M");
            QemuIo("vhdx", vhdx, "write -P 0x66 0 4096");
            QemuIo("raw", img, "read -P 0x99 0 1M");
            QemuIo("vhdx", vhdx, "read -P 0x66 0 4096");

            // The .img's 1 MiB never reached the .vhdx: past its own 4 KiB it still reads as the backup.
            ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", vhdx, _dir["vhdx.raw"]);
            Assert.Equal(File.ReadAllBytes(_dir["disk.raw"]).AsSpan(4096, (1 << 20) - 4096).ToArray(), File.ReadAllBytes(_dir["vhdx.raw"]).AsSpan(4096, (1 << 20) - 4096).ToArray());
        }

        var state = Directory.GetFiles(Path.Combine(_vms, ".backupfuse")).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["web.base.vhdx", "web.changes.vhdx", "web.img-base.vhdx", "web.img-changes.vhdx"], state);
        Cli.Ok("reset", img);
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "raw", "-F", "raw", img, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
            QemuIo("vhdx", vhdx, "read -P 0x66 0 4096");
        }
    }

    [Fact]
    public void PluginCreateNamesTheFormatsItTakes()
    {
        var r = Cli.Run("plugin", "create", Path.Combine(_images, "disk.bfi"), Path.Combine(_vms, "web.qcow2"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(".vhdx, .vhd, .vmdk, .img or .raw", r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_vms, "web.qcow2")));
    }

    private string CreatePlugin(string name)
    {
        string path = Path.Combine(_vms, name);
        Cli.Ok("plugin", "create", Path.Combine(_images, "disk.bfi"), path);
        return path;
    }

    private DaemonProcess Mount(params string[] extra) => DaemonProcess.Start(_vms, [_vms, "--images", _images, .. extra]);

    private static void QemuIo(string format, string plugin, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(plugin);
        var r = ExternalTool.Run("qemu-io", args);
        Assert.True(r.ExitCode == 0 && !r.Output.Contains("Pattern verification failed", StringComparison.Ordinal) && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase),
            $"qemu-io {string.Join(" | ", commands)}: {r.Output}");
    }

    private static string ReadHead(string plugin)
    {
        var head = new byte[21 * 512];
        using var f = File.OpenRead(plugin);
        f.ReadExactly(head);
        return Convert.ToHexString(head);
    }

    private static string Hash(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }

    private string HashImages() => string.Join(",", Directory.GetFiles(_images).Order(StringComparer.Ordinal).Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));
}
