using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 17, zstd through the real executable: <c>backup --codec zstd</c> and its validation; chains mixing Deflate
/// and zstd (either way round) served by a real FUSE mount and compared with qemu-img compare; a CLI merge of such a
/// chain reads as the top's disk.
/// </summary>
[Collection("mounts")]
public sealed class ZstdCodecCliTests : IDisposable
{
    private const long DiskSize = 24L << 20;
    private readonly TempDirectory _dir = new("bfzstdcli");
    private readonly string _images;
    private readonly string _vms;

    public ZstdCodecCliTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        TestDisks.CreateMixed(_dir["v1.raw"], DiskSize, seed: 41);
        File.Copy(_dir["v1.raw"], _dir["v2.raw"]);
        TestDisks.Scatter(_dir["v2.raw"], count: 30, seed: 42);
    }

    public void Dispose()
    {
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    [Fact]
    public void HelpListsTheCodecsAndBadValuesAreUsageErrors()
    {
        var help = Cli.Ok("backup", "--help");
        Assert.Contains("deflate, zstd", help.StdOut, StringComparison.Ordinal);
        Assert.Contains("--level", help.StdOut, StringComparison.Ordinal);

        var cases = new (string[] Args, string Message)[]
        {
            (["--codec", "lz4"], "--codec lz4: unknown codec; valid codecs: deflate, zstd, none"),
            (["--codec", "zstd", "--level", "0"], "--level must be 1.."),
            (["--codec", "zstd", "--level", "99"], "for zstd (got 99)"),
            (["--codec", "deflate", "--level", "12"], "--level must be 1..9 for deflate"),
            (["--codec", "none", "--level", "3"], "--codec none has no level"),
        };
        foreach (var (args, message) in cases)
        {
            string dest = _dir["bad.bfi"];
            var r = Cli.Run(["backup", _dir["v1.raw"], dest, .. args]);
            Assert.True(r.ExitCode == 2, $"{string.Join(' ', args)}: exit {r.ExitCode}: {r.Output}");
            Assert.Contains(message, r.StdErr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", r.Output, StringComparison.Ordinal);
            Assert.False(File.Exists(dest));
        }

        // Without --codec: zstd, the measured winner (docs/format.md, section 10), at level 3.
        Assert.Contains("default zstd", help.StdOut, StringComparison.Ordinal);
        Cli.Ok("backup", _dir["v1.raw"], _dir["default.bfi"]);
        Assert.Equal(2, File.ReadAllBytes(_dir["default.bfi"])[72]);

        // A high level is accepted, stores no more than level 1, and the header says zstd (docs/format.md, byte 72).
        Cli.Ok("backup", _dir["v1.raw"], _dir["z1.bfi"], "--codec", "zstd", "--level", "1");
        Cli.Ok("backup", _dir["v1.raw"], _dir["z9.bfi"], "--codec", "zstd", "--level", "9");
        Assert.True(new FileInfo(_dir["z9.bfi"]).Length <= new FileInfo(_dir["z1.bfi"]).Length);
        Assert.Equal(2, File.ReadAllBytes(_dir["z9.bfi"])[72]);
        Assert.Contains("zstd", Cli.Ok("info", _dir["z9.bfi"]).Output, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("deflate", "zstd")]
    [InlineData("zstd", "deflate")]
    public void AMixedChainReadsRightThroughTheMountAndAfterAMerge(string fullCodec, string incrementalCodec)
    {
        Prerequisite.Tool("qemu-img", "qemu-utils");
        string full = Path.Combine(_images, "full.bfi");
        string inc = Path.Combine(_images, "inc.bfi");
        Cli.Ok("backup", _dir["v1.raw"], full, "--codec", fullCodec);
        Cli.Ok("backup", _dir["v2.raw"], inc, "--parent", full, "--codec", incrementalCodec);
        Cli.Ok("plugin", "create", full, Path.Combine(_vms, "full.vhdx"));
        Cli.Ok("plugin", "create", inc, Path.Combine(_vms, "inc.vhdx"));
        using (var daemon = DaemonProcess.Start(_vms, [_vms, "--images", _images, "--read-only"]))
        {
            Compare(Path.Combine(_vms, "full.vhdx"), _dir["v1.raw"]);
            Compare(Path.Combine(_vms, "inc.vhdx"), _dir["v2.raw"]);
            daemon.Stop();
        }

        // merge writes a synthetic full of the incremental's state (payloads copied, or recompressed where the codec differs).
        string merged = _dir["merged.bfi"];
        Cli.Ok("merge", inc, "--output", merged);
        Cli.Ok("verify", merged);
        Cli.Ok("export", merged, _dir["merged.raw"], "--format", "raw");
        Assert.Equal(0, ExternalTool.Run("cmp", [_dir["v2.raw"], _dir["merged.raw"]]).ExitCode);
    }

    private static void Compare(string plugin, string raw)
    {
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, raw], TimeSpan.FromMinutes(2));
        Assert.True(compare.ExitCode == 0, $"{plugin}: {compare.Output}");
        Assert.Contains("Images are identical", compare.StdOut, StringComparison.Ordinal);
    }
}
