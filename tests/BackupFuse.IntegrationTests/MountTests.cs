using System.Security.Cryptography;
using System.Text.Json;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 3 acceptance with real mounts of the real daemon: a 1 GiB disk with a full and two incremental backups,
/// a plugin per point, checked by QEMU, libvhdi and 7-Zip; restarts, SIGKILL, SIGTERM with a reader, bad plugins.
/// </summary>
[Collection("mounts")]
public sealed class MountTests : IClassFixture<MountTests.Points>
{
    private readonly Points _p;

    public MountTests(Points points)
    {
        _p = points;
    }

    /// <summary>Three backup points of a 1 GiB disk and a plugin directory for them.</summary>
    public sealed class Points : IDisposable
    {
        public Points()
        {
            Directory.CreateDirectory(Images);
            Directory.CreateDirectory(Vms);
            TestDisks.CreateMixed(Dir["p0.raw"], 1L << 30, seed: 10);
            Cli.Ok("backup", Dir["p0.raw"], Path.Combine(Images, "p0.bfi"));
            for (int i = 1; i <= 2; i++)
            {
                File.Copy(Dir[$"p{i - 1}.raw"], Dir[$"p{i}.raw"]);
                TestDisks.Scatter(Dir[$"p{i}.raw"], count: 30, seed: 10 + i);
                Cli.Ok("backup", Dir[$"p{i}.raw"], Path.Combine(Images, $"p{i}.bfi"), "--parent", Path.Combine(Images, $"p{i - 1}.bfi"));
            }

            for (int i = 0; i <= 2; i++)
            {
                Cli.Ok("plugin", "create", Path.Combine(Images, $"p{i}.bfi"), Path.Combine(Vms, $"p{i}.vhdx"));
            }

            ImageHashes = HashImages();
        }

        public TempDirectory Dir { get; } = new("bfmount");

        public string Images => Dir["images"];

        public string Vms => Dir["vms"];

        public string ImageHashes { get; }

        public string HashImages() => string.Join(",", Directory.GetFiles(Images).Order(StringComparer.Ordinal).Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

        public DaemonProcess Mount(params string[] extra) => DaemonProcess.Start(Vms, [Vms, "--images", Images, .. extra]);

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void EachPointReadsAsItsDiskInQemu()
    {
        using var daemon = _p.Mount();
        for (int i = 0; i <= 2; i++)
        {
            string plugin = Path.Combine(_p.Vms, $"p{i}.vhdx");
            var info = ExternalTool.Check("qemu-img", "info", "--output=json", plugin);
            using var json = JsonDocument.Parse(info.StdOut);
            Assert.Equal("vhdx", json.RootElement.GetProperty("format").GetString());
            Assert.Equal(1L << 30, json.RootElement.GetProperty("virtual-size").GetInt64());
            Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", plugin).StdOut, StringComparison.Ordinal);
            var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, _p.Dir[$"p{i}.raw"]]);
            Assert.True(compare.ExitCode == 0, $"point {i}: {compare.Output}");
            Assert.Contains("Images are identical", compare.StdOut, StringComparison.Ordinal);
        }

        // A different point really is different (the comparison above could not pass by accident).
        Assert.Equal(1, ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", Path.Combine(_p.Vms, "p2.vhdx"), _p.Dir["p0.raw"]]).ExitCode);
        Assert.Equal(_p.ImageHashes, _p.HashImages());
    }

    [Fact]
    public void LibvhdiAnd7ZipReadTheSynthesizedFile()
    {
        using var daemon = _p.Mount();
        string plugin = Path.Combine(_p.Vms, "p2.vhdx");
        var vhdiinfo = ExternalTool.Check("vhdiinfo", plugin);
        Assert.Contains("1073741824 bytes", vhdiinfo.StdOut, StringComparison.Ordinal);
        Assert.Contains("Fixed", vhdiinfo.StdOut, StringComparison.Ordinal);

        using var mnt = new TempDirectory("bfvhdi");
        ExternalTool.Check("vhdimount", plugin, mnt.Path);
        try
        {
            Assert.Equal(0, ExternalTool.Run("cmp", [Path.Combine(mnt.Path, "vhdi1"), _p.Dir["p2.raw"]]).ExitCode);
        }
        finally
        {
            ExternalTool.Run("fusermount3", ["-u", mnt.Path]);
        }

        // -tvhdx: test the VHDX container itself; without it 7-Zip also probes the disk's own content for archives.
        var sevenZip = ExternalTool.Run("7zz", ["t", "-tvhdx", plugin]);
        Assert.True(sevenZip.ExitCode == 0, sevenZip.Output);
        Assert.Contains("Everything is Ok", sevenZip.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("WARNING", sevenZip.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void RestartGivesTheSameBytesAndHolesStayHoles()
    {
        string plugin = Path.Combine(_p.Vms, "p1.vhdx");
        string first;
        using (var daemon = _p.Mount())
        {
            first = HashHead(plugin);
            long blocks = long.Parse(ExternalTool.Check("stat", "-c", "%b", plugin).StdOut.Trim(), System.Globalization.CultureInfo.InvariantCulture);
            long size = new FileInfo(plugin).Length;
            Assert.True(blocks * 512 < size, $"st_blocks {blocks} does not show the zero areas as holes (size {size})");
            Assert.True(blocks > 0);

            // SEEK_DATA/SEEK_HOLE through the mount agree with the backup's zero areas: the first payload hole is
            // where the reference VHDX reads zeros, and the next data after it is non-zero.
            using var reference = Reference(1);
            using var h = File.OpenHandle(plugin);
            long hole = Seek(h, reference.PayloadOffset, SeekHole);
            long data = Seek(h, hole, SeekData);
            Assert.True(hole < size && data > hole, $"hole {hole}, data {data}");
            var zeros = new byte[(int)Math.Min(data - hole, 1 << 20)];
            reference.Read(hole, zeros);
            Assert.True(zeros.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"the hole at {hole} holds data");
            var after = new byte[64 * 1024];
            reference.Read(data, after);
            Assert.True(after.AsSpan().IndexOfAnyExcept((byte)0) >= 0, $"SEEK_DATA gave {data}, but the 64 KiB chunk there is all zeros");
            Assert.Equal(0, Seek(h, 0, SeekData));
        }

        using (var daemon = _p.Mount())
        {
            Assert.Equal(first, HashHead(plugin));
        }
    }

    [Fact]
    public void SigkillLeavesNoStaleMount()
    {
        var daemon = _p.Mount();
        daemon.Signal("KILL");
        daemon.WaitForExit(TimeSpan.FromSeconds(10));
        DaemonProcess.WaitUnmounted(_p.Vms, TimeSpan.FromSeconds(10));
        daemon.Dispose();
        // The directory is the plain directory again: the plugin is its small text file.
        Assert.StartsWith("backupfuse-plugin 1", File.ReadAllText(Path.Combine(_p.Vms, "p0.vhdx")), StringComparison.Ordinal);
    }

    [Fact]
    public void SigtermWhileAReaderHoldsTheFileOpenKeepsTheReaderCorrect()
    {
        using var daemon = _p.Mount();
        string plugin = Path.Combine(_p.Vms, "p2.vhdx");
        using var expected = Reference(2);
        using var handle = File.OpenHandle(plugin);
        var got = new byte[1 << 20];
        var want = new byte[1 << 20];
        long offset = expected.PayloadOffset;
        for (int i = 0; i < 64; i++, offset += got.Length)
        {
            if (i == 16)
            {
                daemon.Signal("TERM");
                DaemonProcess.WaitUnmounted(_p.Vms, TimeSpan.FromSeconds(10));
                Assert.False(daemon.HasExited, "the daemon must keep serving the open file after SIGTERM");
            }

            // A reader must accept short reads (POSIX); what it must never get is wrong bytes or an error.
            for (int n = 0; n < got.Length;)
            {
                int r = RandomAccess.Read(handle, got.AsSpan(n), offset + n);
                Assert.True(r > 0, $"read {i} at {offset + n} returned {r}");
                n += r;
            }

            expected.Read(offset, want);
            Assert.True(got.AsSpan().SequenceEqual(want), $"reader saw wrong bytes at {offset}");
        }

        handle.Dispose();
        int exit = daemon.WaitForExit(TimeSpan.FromSeconds(20));
        Assert.True(exit == 0, $"the daemon exited with {exit} after the drain; its log:\n{daemon.Log}");
    }

    [Fact]
    public void BadPluginsFailOnlyTheirOwnOpen()
    {
        using var outside = new TempDirectory("bfout");
        File.Copy(Path.Combine(_p.Images, "p0.bfi"), outside["p0.bfi"]);
        string p0Id = File.ReadAllLines(Path.Combine(_p.Vms, "p0.vhdx")).Single(l => l.StartsWith("image-id", StringComparison.Ordinal)).Split('=')[1].Trim();
        string damaged = Path.Combine(_p.Vms, "damaged.vhdx");
        string outsideRoots = Path.Combine(_p.Vms, "outside.vhdx");
        string dangling = Path.Combine(_p.Vms, "dangling.vhdx");
        string realVhdx = Path.Combine(_p.Vms, "real.vhdx");
        File.WriteAllText(damaged, "backupfuse-plugin 1\nimage = /nowhere\n");
        File.WriteAllText(outsideRoots, $"backupfuse-plugin 1\nimage = {outside["p0.bfi"]}\nimage-id = {p0Id}\n");
        File.WriteAllText(dangling, $"backupfuse-plugin 1\nimage = {Path.Combine(_p.Images, "gone.bfi")}\nimage-id = {Guid.NewGuid()}\n");
        ExternalTool.Check("qemu-img", "create", "-f", "vhdx", realVhdx, "8M");
        byte[] realBytes = File.ReadAllBytes(realVhdx);
        try
        {
            using var daemon = _p.Mount();
            AssertOpenFails(damaged, expectAccessDenied: false);
            AssertOpenFails(dangling, expectAccessDenied: false);
            AssertOpenFails(outsideRoots, expectAccessDenied: true);
            Assert.Equal(realBytes, File.ReadAllBytes(realVhdx));
            Assert.Contains("No errors", ExternalTool.Check("qemu-img", "check", Path.Combine(_p.Vms, "p0.vhdx")).StdOut, StringComparison.Ordinal);
            daemon.Stop();
            Assert.Contains("damaged.vhdx", daemon.Log, StringComparison.Ordinal);
            Assert.Contains("outside the --images", daemon.Log, StringComparison.Ordinal);
            Assert.Contains("gone.bfi is missing", daemon.Log, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var f in new[] { damaged, outsideRoots, dangling, realVhdx })
            {
                File.Delete(f);
            }
        }
    }

    [Fact]
    public void PassThroughFilesAreReadWrite()
    {
        string path = Path.Combine(_p.Vms, "nvram.bin");
        using (var daemon = _p.Mount())
        {
            File.WriteAllText(path, "hello");
            File.AppendAllText(path, " world");
            File.Move(path, path + ".2");
            Assert.Equal("hello world", File.ReadAllText(path + ".2"));
        }

        Assert.Equal("hello world", File.ReadAllText(path + ".2"));
        File.Delete(path + ".2");
    }

    [Fact]
    public void ACorruptChunkFailsTheReadNeverWrongBytes()
    {
        using var bad = new TempDirectory("bfcorrupt");
        File.Copy(Path.Combine(_p.Images, "p0.bfi"), bad["p0.bfi"]);
        using (var h = File.OpenHandle(bad["p0.bfi"], FileMode.Open, FileAccess.ReadWrite))
        {
            var b = new byte[64];
            RandomAccess.Read(h, b, 100 << 20);
            for (int i = 0; i < b.Length; i++)
            {
                b[i] ^= 0xFF;
            }

            RandomAccess.Write(h, b, 100 << 20);
        }

        using var vms = new TempDirectory("bfcorruptvms");
        Cli.Ok("plugin", "create", bad["p0.bfi"], vms["bad.vhdx"]);
        using var daemon = DaemonProcess.Start(vms.Path, vms.Path, "--images", bad.Path);
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", vms["bad.vhdx"], _p.Dir["p0.raw"]]);
        Assert.NotEqual(0, compare.ExitCode);
        Assert.DoesNotContain("Images are identical", compare.StdOut, StringComparison.Ordinal);
        Assert.Contains("Input/output error", compare.Output, StringComparison.Ordinal);
        daemon.Stop();
        Assert.Matches(@"p0\.bfi.*chunk \d+", daemon.Log);
    }

    private static void AssertOpenFails(string path, bool expectAccessDenied)
    {
        var e = Record.Exception(() => File.ReadAllBytes(path));
        Assert.NotNull(e);
        if (expectAccessDenied)
        {
            Assert.IsType<UnauthorizedAccessException>(e);
        }
        else
        {
            Assert.IsAssignableFrom<IOException>(e);
        }
    }

    private const int SeekData = 3;
    private const int SeekHole = 4;

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern long lseek(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, int whence);

    private static long Seek(Microsoft.Win32.SafeHandles.SafeFileHandle h, long offset, int whence)
    {
        long r = lseek(h, offset, whence);
        Assert.True(r >= 0, $"lseek({offset}, {whence}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        return r;
    }

    private static string HashHead(string path)
    {
        using var h = File.OpenHandle(path);
        var head = new byte[64 << 20];
        Assert.Equal(head.Length, RandomAccess.Read(h, head, 0));
        return Convert.ToHexString(SHA256.HashData(head));
    }

    private ReferenceVhdx Reference(int point) => new(_p.Images, $"p{point}.bfi");
}
