using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 2 acceptance, through the real executable: a 512 MiB disk of real files and zeros, a full backup, a few
/// MiB changed in scattered places, an incremental; exports equal the disks byte for byte; verify; info.
/// </summary>
public sealed class BackupCliTests : IClassFixture<BackupCliTests.Chain>
{
    private readonly Chain _chain;

    public BackupCliTests(Chain chain)
    {
        _chain = chain;
    }

    public sealed class Chain : IDisposable
    {
        public Chain()
        {
            TestDisks.CreateMixed(Dir["v1.raw"], 512L << 20, seed: 1);
            File.Copy(Dir["v1.raw"], Dir["v2.raw"]);
            TestDisks.Scatter(Dir["v2.raw"], count: 40, seed: 2);
            Cli.Ok("backup", Dir["v1.raw"], Dir["full.bfi"]);
            Cli.Ok("backup", Dir["v2.raw"], Dir["inc.bfi"], "--parent", Dir["full.bfi"]);
        }

        public TempDirectory Dir { get; } = new("bfcli");

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void ExportsEqualTheDisksAndTheIncrementalIsSmall()
    {
        var d = _chain.Dir;
        Cli.Ok("export", d["full.bfi"], d["full.out"], "--format", "raw");
        Cli.Ok("export", d["inc.bfi"], d["inc.out"]);
        Assert.Equal(0, ExternalTool.Run("cmp", [d["v1.raw"], d["full.out"]]).ExitCode);
        Assert.Equal(0, ExternalTool.Run("cmp", [d["v2.raw"], d["inc.out"]]).ExitCode);
        long full = new FileInfo(d["full.bfi"]).Length;
        long inc = new FileInfo(d["inc.bfi"]).Length;
        Assert.True(inc * 10 < full, $"incremental {inc} bytes is not a small fraction of the full {full}");
        File.Delete(d["full.out"]);
        File.Delete(d["inc.out"]);
    }

    [Fact]
    public void VerifyPassesOnGoodImagesAndInfoShowsTheChain()
    {
        var d = _chain.Dir;
        var verify = Cli.Ok("verify", d["inc.bfi"]);
        Assert.Contains("OK: 2 image(s)", verify.StdOut, StringComparison.Ordinal);
        var info = Cli.Ok("info", d["inc.bfi"]);
        Assert.Contains("chain:        2 image(s)", info.StdOut, StringComparison.Ordinal);
        Assert.Contains(d["full.bfi"], info.StdOut, StringComparison.Ordinal);
        Assert.Contains("none (full backup)", info.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void VerifyNamesTheBadChunkOfACorruptCopy()
    {
        var d = _chain.Dir;
        using var work = new TempDirectory("bfbad");
        File.Copy(d["full.bfi"], work["full.bfi"]);
        // Flip bytes well inside the payload area (after the 512-byte header, before the index at the end).
        using (var h = File.OpenHandle(work["full.bfi"], FileMode.Open, FileAccess.ReadWrite))
        {
            var b = new byte[16];
            RandomAccess.Read(h, b, 20 << 20);
            for (int i = 0; i < b.Length; i++)
            {
                b[i] ^= 0x5A;
            }

            RandomAccess.Write(h, b, 20 << 20);
        }

        var r = Cli.Run("verify", work["full.bfi"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"BAD .*full\.bfi: chunk \d+ \(disk offset \d+\)", r.StdOut);
        Assert.Contains("FAILED", r.StdOut, StringComparison.Ordinal);

        // Reading the corrupt chunk (export) fails with a message naming the image and chunk; no output is left.
        var export = Cli.Run("export", work["full.bfi"], work["out.raw"]);
        Assert.Equal(1, export.ExitCode);
        Assert.Contains("full.bfi", export.StdErr, StringComparison.Ordinal);
        Assert.Contains("chunk", export.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(work["out.raw"]));
    }

    [Fact]
    public void MissingParentAndBadArgumentsGetClearErrors()
    {
        var d = _chain.Dir;
        using var work = new TempDirectory("bfmiss");
        File.Copy(d["inc.bfi"], work["inc.bfi"]);
        var r = Cli.Run("info", work["inc.bfi"]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ", r.StdErr, StringComparison.Ordinal);
        Assert.Contains("inc.bfi", r.StdErr, StringComparison.Ordinal);

        var found = Cli.Ok("info", work["inc.bfi"], "--images", d.Path);
        Assert.Contains(d["full.bfi"], found.StdOut, StringComparison.Ordinal);

        Assert.Equal(2, Cli.Run("backup").ExitCode);
        Assert.Equal(2, Cli.Run("export", "a", "b", "--format", "qcow3").ExitCode);
        var missing = Cli.Run("backup", work["nope.raw"], work["x.bfi"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("nope.raw", missing.StdErr, StringComparison.Ordinal);
        Assert.Equal(1, Cli.Run("backup", d["v1.raw"], d["full.bfi"]).ExitCode);
        var badLevel = Cli.Run("backup", d["v1.raw"], work["lvl.bfi"], "--level", "12");
        Assert.Equal(2, badLevel.ExitCode);
        Assert.Contains("--level must be 1..9", badLevel.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(work["lvl.bfi"]));
    }

    [Fact]
    public void AHigherDeflateLevelStoresLessAndReadsTheSame()
    {
        var d = _chain.Dir;
        using var work = new TempDirectory("bflevel");
        Cli.Ok("backup", d["v1.raw"], work["fast.bfi"], "--level", "1");
        Cli.Ok("backup", d["v1.raw"], work["small.bfi"], "--level", "6");
        Assert.True(new FileInfo(work["small.bfi"]).Length < new FileInfo(work["fast.bfi"]).Length, "level 6 did not store less than level 1");
        Cli.Ok("export", work["small.bfi"], work["small.raw"]);
        Assert.Equal(0, ExternalTool.Run("cmp", [d["v1.raw"], work["small.raw"]]).ExitCode);
    }

    [Fact]
    public void EveryCommandHasHelpWithAnExample()
    {
        foreach (var cmd in new[] { "backup", "info", "verify", "export", "mount", "status", "unmount" })
        {
            var r = Cli.Ok(cmd, "--help");
            Assert.Contains("Example", r.StdOut, StringComparison.Ordinal);
        }

        Assert.Contains("Example", Cli.Ok("plugin", "create", "--help").StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void InfoOnA1TiBSparseImageIsQuickAndSmall()
    {
        using var work = new TempDirectory("bf1t");
        using (var h = File.OpenHandle(work["big.raw"], FileMode.Create, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(h, 1L << 40);
            var data = new byte[1 << 20];
            new Random(3).NextBytes(data);
            foreach (long at in new[] { 0L, 300L << 30, (1L << 40) - (4 << 20) })
            {
                RandomAccess.Write(h, data, at);
            }
        }

        Cli.Ok("backup", work["big.raw"], work["big.bfi"]);
        var timed = ExternalTool.Run("/usr/bin/time", ["-f", "maxrss_kib=%M elapsed_s=%e", Cli.Executable, "info", work["big.bfi"]]);
        Assert.Equal(0, timed.ExitCode);
        Assert.Contains("1 TiB", timed.StdOut, StringComparison.Ordinal);
        var rss = System.Text.RegularExpressions.Regex.Match(timed.StdErr, @"maxrss_kib=(\d+)");
        Assert.True(rss.Success, timed.StdErr);
        // The process, runtime included, stays small: the index of a 1 TiB image is not loaded.
        Assert.True(long.Parse(rss.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) < 120_000, timed.StdErr);
    }
}
