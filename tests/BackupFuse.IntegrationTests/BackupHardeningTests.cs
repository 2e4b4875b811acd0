using System.Text;
using System.Text.Json;
using BackupFuse.BackupImage.Format;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 10, backup and image-format side, through the real executable: encrypted chains stay encrypted, a closed
/// pipe is an error, disks beyond VHDX's 64 TiB still get info and raw export (and one warning under the mount), a
/// wrong parent with the right id is refused, and bad input gets one clear line with the right exit code.
/// </summary>
[Collection("mounts")]
public sealed class BackupHardeningTests : IDisposable
{
    private const string Secret = "hardening passphrase";
    private readonly TempDirectory _dir = new("bfharden");

    public void Dispose() => _dir.Dispose();

    private static Dictionary<string, string> Pass => new() { ["BACKUPFUSE_PASSPHRASE"] = Secret };

    /// <summary>The lines of standard error that are messages (not progress lines).</summary>
    private static string[] ErrorLines(ToolResult r) =>
        [.. r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.StartsWith("error:", StringComparison.Ordinal))];

    /// <summary>Asserts exit code <paramref name="code"/> and exactly one error line containing <paramref name="expected"/>.</summary>
    private static void AssertOneError(ToolResult r, int code, string expected)
    {
        Assert.True(r.ExitCode == code, $"exit {r.ExitCode}, expected {code}: {r.Output}");
        var lines = ErrorLines(r);
        Assert.True(lines.Length == 1, $"expected one error line: {r.StdErr}");
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("unexpected", r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Output, StringComparison.Ordinal); // no stack trace
    }

    /// <summary>1 MiB of numbered lines of <paramref name="text"/> (no two chunks equal), written at <paramref name="offset"/>.</summary>
    private static void WriteMarker(string path, long offset, string text)
    {
        var sb = new StringBuilder();
        for (int i = 0; sb.Length < 1 << 20; i++)
        {
            sb.Append(text).Append(' ').Append(i).Append('\n');
        }

        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Position = offset;
        fs.Write(Encoding.ASCII.GetBytes(sb.ToString()).AsSpan(0, 1 << 20));
    }

    [Fact]
    public void IncrementalOfAnEncryptedFullIsEncryptedAndNoEncryptIsRefused()
    {
        string disk = _dir["d.raw"];
        TestDisks.CreateMixed(disk, 8 << 20, seed: 41);
        Assert.Equal(0, Cli.RunWithEnv(Pass, "backup", disk, _dir["full.bfi"], "--encrypt").ExitCode);
        WriteMarker(disk, 2 << 20, "PLAINTEXT-CANARY-ROW");

        // No --encrypt, no compression: the new data would be readable in the file if it were not encrypted.
        var inc = Cli.RunWithEnv(Pass, "backup", disk, _dir["inc.bfi"], "--parent", _dir["full.bfi"], "--codec", "none");
        Assert.True(inc.ExitCode == 0, inc.Output);
        var info = Cli.RunWithEnv(Pass, "info", _dir["inc.bfi"], "--json");
        Assert.True(info.ExitCode == 0, info.Output);
        using (var json = JsonDocument.Parse(info.StdOut))
        {
            var top = json.RootElement.GetProperty("chain")[0];
            Assert.Equal(_dir["inc.bfi"], top.GetProperty("path").GetString());
            Assert.Equal("Aes256GcmPbkdf2Sha256", top.GetProperty("encryption").GetString());
            Assert.True(top.GetProperty("dataChunks").GetInt64() >= 16, info.StdOut);
        }

        byte[] image = File.ReadAllBytes(_dir["inc.bfi"]);
        Assert.True(image.AsSpan().IndexOf("PLAINTEXT-CANARY-ROW"u8) < 0, "the incremental holds the new data in plain text");

        // The chain reads back as the disk.
        Assert.Equal(0, Cli.RunWithEnv(Pass, "export", _dir["inc.bfi"], _dir["back.raw"]).ExitCode);
        Assert.True(TestDisks.SameContent(disk, _dir["back.raw"]));

        AssertOneError(Cli.RunWithEnv(Pass, "backup", disk, _dir["plain.bfi"], "--parent", _dir["full.bfi"], "--no-encrypt"), 1,
            $"--no-encrypt: the parent chain is encrypted ({_dir["full.bfi"]})");
        AssertOneError(Cli.RunWithEnv(new Dictionary<string, string> { ["BACKUPFUSE_PASSPHRASE"] = string.Empty }, "backup", disk, _dir["nopass.bfi"], "--parent", _dir["full.bfi"]), 1,
            $"{_dir["full.bfi"]} is encrypted: a passphrase is needed");
        Assert.False(File.Exists(_dir["plain.bfi"]) || File.Exists(_dir["nopass.bfi"]));
    }

    [Fact]
    public void BackupOrExportIntoAPipeThatClosesIsAnError()
    {
        string disk = _dir["d.raw"];
        TestDisks.CreateMixed(disk, 32 << 20, seed: 42);
        Cli.Ok("backup", disk, _dir["full.bfi"]);
        foreach (string command in new[] { $"'{Cli.Executable}' backup '{disk}' -", $"'{Cli.Executable}' export '{_dir["full.bfi"]}' -" })
        {
            // pipefail: the pipeline's status is backupfuse's, not head's.
            var r = ExternalTool.Run("bash", ["-o", "pipefail", "-c", $"{command} | head -c 1000 > /dev/null"], TimeSpan.FromMinutes(2));
            AssertOneError(r, 1, "standard output was closed before everything was written (broken pipe");
            Assert.DoesNotContain("full backup", r.StdErr, StringComparison.Ordinal);
            Assert.DoesNotContain("exported", r.StdErr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void DiskBeyondVhdxLimitHasInfoAndRawExportAndOneWarningUnderTheMount()
    {
        // ext4 stops at 16 TiB per file; tmpfs holds a 65 TiB sparse file.
        using var shm = new ShmDirectory();
        string disk = shm["big.raw"];
        long size = 65L << 40;
        long dataAt = (64L << 40) + (5L << 20);
        using (var fs = new FileStream(disk, FileMode.CreateNew, FileAccess.Write))
        {
            fs.SetLength(size);
        }

        WriteMarker(disk, dataAt, "BEYOND-64-TIB");
        WriteMarker(disk, 0, "FIRST-MIB");
        Directory.CreateDirectory(shm["images"]);
        Directory.CreateDirectory(shm["vms"]);
        string image = Path.Combine(shm["images"], "big.bfi");
        Cli.Ok("backup", disk, image);

        var info = Cli.Ok("info", image);
        Assert.Contains($"({size} bytes)", info.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("unexpected", info.Output, StringComparison.Ordinal);

        string exported = shm["out.raw"];
        Cli.Ok("export", image, exported, "--format", "raw");
        Assert.Equal(size, new FileInfo(exported).Length);
        foreach (long offset in new[] { 0L, dataAt - 4096, (60L << 40) + 12345, size - (1 << 20) })
        {
            Assert.True(SameBytes(disk, exported, offset, 2 << 20), $"export differs near {offset}");
        }

        Assert.True(ReadAt(exported, dataAt, 13).AsSpan().SequenceEqual("BEYOND-64-TIB"u8), "the data past 64 TiB is not in the export");
        AssertOneError(Cli.Run("export", image, shm["out.vhdx"], "--format", "vhdx"), 1, $"disk of {size} bytes is larger than VHDX's 64 TiB limit");

        // Under the mount: the plugin cannot be served; that is said once, however often it is looked at.
        string plugin = Path.Combine(shm["vms"], "big.vhdx");
        Cli.Ok("plugin", "create", image, plugin);
        Assert.Contains("larger than VHDX's 64 TiB limit", Cli.Ok("info", plugin).StdOut, StringComparison.Ordinal);
        using var daemon = DaemonProcess.Start(shm["vms"], shm["vms"], "--images", shm["images"]);
        for (int i = 0; i < 4; i++)
        {
            ExternalTool.Run("stat", [plugin]);
        }

        Assert.ThrowsAny<IOException>(() => File.ReadAllBytes(plugin));
        daemon.Stop();
        // One "cannot serve" warning for the four stats and the open (the open itself is logged by the FUSE layer).
        var warnings = daemon.Log.Split('\n').Where(l => l.Contains("big.vhdx: cannot serve this plugin", StringComparison.Ordinal)).ToArray();
        Assert.True(warnings.Length == 1, $"expected one warning about the plugin: {daemon.Log}");
        Assert.Contains("64 TiB limit", warnings[0], StringComparison.Ordinal);
        Assert.DoesNotContain("getattr /big.vhdx", daemon.Log, StringComparison.Ordinal); // was: EINVAL and a warning per stat
        Assert.DoesNotContain("ArgumentOutOfRange", daemon.Log, StringComparison.Ordinal);
    }

    [Fact]
    public void AnotherFullCarryingTheParentsIdIsRefusedByInfoVerifyAndMount()
    {
        string disk = _dir["d.raw"];
        TestDisks.CreateMixed(disk, 8 << 20, seed: 43);
        string images = _dir["images"];
        Directory.CreateDirectory(images);
        string a = Path.Combine(images, "a.bfi");
        string b = Path.Combine(images, "b.bfi");
        string c = Path.Combine(images, "c.bfi");
        Cli.Ok("backup", disk, a);
        TestDisks.CreateMixed(_dir["other.raw"], 8 << 20, seed: 44);
        Cli.Ok("backup", _dir["other.raw"], b);
        TestDisks.Scatter(disk, count: 5, seed: 45);
        Cli.Ok("backup", disk, c, "--parent", a);
        Assert.Contains("bound to its content", Cli.Ok("info", c).StdOut, StringComparison.Ordinal);
        string vms = _dir["vms"];
        Directory.CreateDirectory(vms);
        string plugin = Path.Combine(vms, "c.vhdx");
        Cli.Ok("plugin", "create", c, plugin);

        // B is given A's identity (header and trailer, checksums fixed) and takes A's place.
        Guid aId = ImageHeader.Parse(File.ReadAllBytes(a).AsSpan(0, ImageHeader.Size), a).ImageId;
        GiveIdentity(b, aId);
        File.Move(a, _dir["a.bfi.away"]);
        string expected = $"{c}'s parent {b} is not the image {c} was made from (content differs)";
        AssertOneError(Cli.Run("info", c), 1, expected);
        AssertOneError(Cli.Run("verify", c), 1, expected);
        Assert.DoesNotContain("OK", Cli.Run("verify", c).StdOut, StringComparison.Ordinal);

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", images))
        {
            Assert.ThrowsAny<IOException>(() => File.ReadAllBytes(plugin));
            daemon.Stop();
            Assert.Contains("is not the image", daemon.Log, StringComparison.Ordinal);
        }

        // The right parent back: everything works again.
        File.Delete(b);
        File.Move(_dir["a.bfi.away"], a);
        Assert.Contains("OK", Cli.Ok("verify", c).StdOut, StringComparison.Ordinal);
        Cli.Ok("export", c, _dir["c.raw"]);
        Assert.True(TestDisks.SameContent(disk, _dir["c.raw"]));

        // An image from before the binding (format 1.0, flag off) still opens, and says it is not bound.
        RewriteHeader(c, h => h with { MinorVersion = 0, Flags = ImageHeaderFlags.None, ParentBinding = new byte[ParentBinding.Size] });
        Assert.Contains("parent not bound (older image)", Cli.Ok("info", c).StdOut, StringComparison.Ordinal);
        var verify = Cli.Ok("verify", c);
        Assert.Contains($"note: {c}: parent not bound (older image)", verify.StdOut, StringComparison.Ordinal);
        Assert.Contains("OK", verify.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void BadInputGetsOneClearLine()
    {
        string disk = _dir["d.raw"];
        TestDisks.CreateMixed(disk, 4 << 20, seed: 46);
        Cli.Ok("backup", disk, _dir["full.bfi"]);

        AssertOneError(Cli.Run("info", _dir.Path), 1, $"{_dir.Path}: is a directory");
        var zero = ExternalTool.Run(Cli.Executable, ["info", "/dev/zero"], TimeSpan.FromSeconds(30));
        AssertOneError(zero, 1, "/dev/zero: not a regular file");

        string missing = Path.Combine(_dir["no-such-dir"], "x.bfi");
        AssertOneError(Cli.Run("backup", disk, missing), 1, $"cannot write {missing}: the directory {_dir["no-such-dir"]} does not exist");
        AssertOneError(Cli.Run("export", _dir["full.bfi"], missing), 1, $"the directory {_dir["no-such-dir"]} does not exist");

        var bogus = Cli.Run("export", _dir["full.bfi"], _dir["x.raw"], "--format", "bogus");
        AssertOneError(bogus, 2, "--format bogus: unknown format; valid formats: raw, vhdx");
        Assert.DoesNotContain("Usage", bogus.Output, StringComparison.Ordinal);
        AssertOneError(Cli.Run("backup", disk, _dir["x.bfi"], "--codec", "lz4"), 2, "valid codecs: deflate, zstd, none");
        AssertOneError(Cli.Run("backup", disk, _dir["x.bfi"], "--chunk-size", "2"), 1, "--chunk-size 2: must be a power of two from 4 to 4096");
        AssertOneError(Cli.Run("backup", disk, _dir["x.bfi"], "--encrypt", "--no-encrypt"), 2, "contradict");

        string small = _dir["small.raw"];
        TestDisks.CreateMixed(small, 2 << 20, seed: 47);
        AssertOneError(Cli.Run("backup", small, _dir["x.bfi"], "--parent", _dir["full.bfi"]), 1,
            $"is a disk of {2 << 20} bytes but the parent image {_dir["full.bfi"]} is a disk of {4 << 20} bytes");
        Assert.Empty(Directory.GetFiles(_dir.Path, "x.*"));
    }

    private static byte[] ReadAt(string path, long offset, int length)
    {
        using var handle = File.OpenHandle(path);
        var bytes = new byte[length];
        Assert.Equal(length, RandomAccess.Read(handle, bytes, offset));
        return bytes;
    }

    private static bool SameBytes(string x, string y, long offset, int length)
    {
        using var fx = File.OpenHandle(x);
        using var fy = File.OpenHandle(y);
        var bx = new byte[length];
        var by = new byte[length];
        return RandomAccess.Read(fx, bx, offset) == RandomAccess.Read(fy, by, offset) && bx.AsSpan().SequenceEqual(by);
    }

    private static void RewriteHeader(string path, Func<ImageHeader, ImageHeader> change)
    {
        var header = ImageHeader.Parse(File.ReadAllBytes(path).AsSpan(0, ImageHeader.Size), path);
        var bytes = new byte[ImageHeader.Size];
        change(header).WriteTo(bytes);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Write(bytes);
    }

    /// <summary>Gives the image another identity in its header and trailer, with valid checksums (a hostile or botched edit).</summary>
    private static void GiveIdentity(string path, Guid id)
    {
        byte[] file = File.ReadAllBytes(path);
        var header = ImageHeader.Parse(file.AsSpan(0, ImageHeader.Size), path);
        var trailer = ImageTrailer.Parse(file.AsSpan(file.Length - ImageTrailer.Size), header, file.Length, path);
        var hb = new byte[ImageHeader.Size];
        (header with { ImageId = id }).WriteTo(hb);
        var tb = new byte[ImageTrailer.Size];
        (trailer with { ImageId = id }).WriteTo(tb);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Write(hb);
        fs.Position = file.Length - ImageTrailer.Size;
        fs.Write(tb);
    }

    /// <summary>A fresh directory on tmpfs (/dev/shm), which allows sparse files beyond ext4's 16 TiB.</summary>
    private sealed class ShmDirectory : IDisposable
    {
        public ShmDirectory()
        {
            Directory.CreateDirectory(Path);
        }

        public string Path { get; } = System.IO.Path.Combine("/dev/shm", "bfbig-" + Guid.NewGuid().ToString("N"));

        public string this[string name] => System.IO.Path.Combine(Path, name);

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
                // A mount still detaching; tmpfs is emptied at reboot anyway.
            }
        }
    }
}
