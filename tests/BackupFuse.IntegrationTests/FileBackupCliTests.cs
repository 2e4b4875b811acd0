using System.Text.Json;
using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 13 (file-level backups), through the real executable: `backup --files` of a directory and of a tar stream on
/// standard input, incrementals, info, verify, and the errors users see.
/// </summary>
public sealed class FileBackupCliTests : IDisposable
{
    private const long Time = 1_700_000_000;
    private readonly TempDirectory _dir = new("bf-files-cli");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void DirectoryFullAndIncrementalReadBackAndInfoAndVerifyDescribeThem()
    {
        string src = _dir["src"];
        MakeTree(src);
        var full = Cli.Ok("backup", "--files", src, _dir["full.bfi"]);
        Assert.Contains("full file backup", full.StdErr, StringComparison.Ordinal);
        ExternalTool.Check("cp", "-a", src, _dir["snap"]);

        File.WriteAllText(Path.Combine(src, "sub", "new.txt"), "new content");
        File.Delete(Path.Combine(src, "a.txt"));
        ExternalTool.Check("touch", "-d", $"@{Time + 60}", Path.Combine(src, "big.bin")); // metadata only
        var inc = Cli.Ok("backup", "--files", src, _dir["inc.bfi"], "--parent", _dir["full.bfi"]);
        Assert.Contains("incremental file backup", inc.StdErr, StringComparison.Ordinal);
        Assert.Contains("(11 B new or changed)", inc.StdErr, StringComparison.Ordinal);
        Assert.True(new FileInfo(_dir["inc.bfi"]).Length < 64 * 1024, "the incremental stored unchanged content again");

        AssertPoint(_dir["full.bfi"], _dir["snap"]);
        AssertPoint(_dir["inc.bfi"], src);

        var verify = Cli.Ok("verify", _dir["inc.bfi"]);
        Assert.Contains("OK: 2 image(s)", verify.StdOut, StringComparison.Ordinal);
        Assert.Contains($"catalog {_dir["full.bfi"]}:", verify.StdOut, StringComparison.Ordinal);
        Assert.Contains($"catalog {_dir["inc.bfi"]}:", verify.StdOut, StringComparison.Ordinal);

        var info = Cli.Ok("info", _dir["inc.bfi"]);
        Assert.Contains("content:      files: 3 files, 3 directories, 1 symlinks, 0 other", info.StdOut, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(Cli.Ok("info", _dir["inc.bfi"], "--json").StdOut);
        Assert.Equal("files", json.RootElement.GetProperty("content").GetString());
        var files = json.RootElement.GetProperty("files");
        Assert.Equal(3, files.GetProperty("files").GetInt64());
        Assert.Equal(3, files.GetProperty("directories").GetInt64());
        Assert.Equal(1, files.GetProperty("symlinks").GetInt64());
        Assert.Equal((1 << 20) + 2 + 11, files.GetProperty("contentBytes").GetInt64());
        Assert.Equal(11, files.GetProperty("newContentBytes").GetInt64());
    }

    [Fact]
    public void TarPipedIntoStandardInputGivesTheDirectorysTree()
    {
        string src = _dir["src"];
        MakeTree(src);
        var r = ExternalTool.Run("sh", ["-c", $"tar c -C '{src}' . | '{Cli.Executable}' backup --files - '{_dir["tar.bfi"]}'"]);
        Assert.True(r.ExitCode == 0, r.Output);
        AssertPoint(_dir["tar.bfi"], src);
        Assert.Contains("OK: 1 image(s)", Cli.Ok("verify", _dir["tar.bfi"]).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void EncryptedFileBackupNeedsThePassphrase()
    {
        string src = _dir["src"];
        MakeTree(src);
        var env = new Dictionary<string, string> { ["BACKUPFUSE_PASSPHRASE"] = "files secret" };
        var r = Cli.RunWithEnv(env, "backup", "--files", src, _dir["enc.bfi"], "--encrypt");
        Assert.True(r.ExitCode == 0, r.Output);
        var denied = ExternalTool.Run(Cli.Executable, ["info", _dir["enc.bfi"]], env: new Dictionary<string, string> { ["BACKUPFUSE_PASSPHRASE"] = string.Empty });
        Assert.Equal(1, denied.ExitCode);
        var info = Cli.RunWithEnv(env, "info", _dir["enc.bfi"]);
        Assert.True(info.ExitCode == 0, info.Output);
        Assert.Contains("files: 3 files", info.StdOut, StringComparison.Ordinal);
        Assert.Contains("OK: 1 image(s)", Cli.RunWithEnv(env, "verify", _dir["enc.bfi"]).StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public void ErrorsAreOneClearLineWithTheRightExitCode()
    {
        string src = _dir["src"];
        MakeTree(src);
        Cli.Ok("backup", "--files", src, _dir["files.bfi"]);
        File.WriteAllBytes(_dir["disk.raw"], new byte[1 << 20]);
        Cli.Ok("backup", _dir["disk.raw"], _dir["disk.bfi"]);

        OneLine(Cli.Run("backup", "--files", _dir["missing"], _dir["x.bfi"]), 1, "no such directory");
        OneLine(Cli.Run("backup", "--files", src, _dir["y.bfi"], "--volume"), 2, "--files");
        OneLine(Cli.Run("backup", "--files", src, _dir["y.bfi"], "--parent", _dir["disk.bfi"]), 1, "file-level backup (backup --files) as its parent");
        OneLine(Cli.Run("backup", _dir["disk.raw"], _dir["z.bfi"], "--parent", _dir["files.bfi"]), 1, "is a file-level backup");
        OneLine(Cli.Run("backup", "--files", src, _dir["files.bfi"]), 1, "already exists");
        OneLine(ExternalTool.Run("sh", ["-c", $"echo not a tar archive at all | '{Cli.Executable}' backup --files - '{_dir["bad.bfi"]}'"]), 1, "tar stream");
        OneLine(ExternalTool.Run("sh", ["-c", $"tar c -C '{src}' . | '{Cli.Executable}' backup --files - -"]), 1, "standard output cannot take it");

        // A tar stream cut in the middle of a file's data.
        ExternalTool.Check("tar", "cf", _dir["whole.tar"], "-C", src, ".");
        File.WriteAllBytes(_dir["cut.tar"], File.ReadAllBytes(_dir["whole.tar"])[..(600 * 1024)]);
        OneLine(ExternalTool.Run("sh", ["-c", $"'{Cli.Executable}' backup --files - '{_dir["cut.bfi"]}' < '{_dir["cut.tar"]}'"]), 1, "tar stream");

        Assert.Empty(Directory.GetFiles(_dir.Path, "*.partial"));
        Assert.False(File.Exists(_dir["bad.bfi"]) || File.Exists(_dir["cut.bfi"]) || File.Exists(_dir["y.bfi"]) || File.Exists(_dir["z.bfi"]));
    }

    [Fact]
    public void VerifyReportsACatalogTheHeaderDoesNotPointAt()
    {
        string src = _dir["src"];
        MakeTree(src);
        Cli.Ok("backup", "--files", src, _dir["files.bfi"]);

        // Every chunk stays valid; only the header's catalog place is wrong (a consistent header CRC).
        string path = _dir["files.bfi"];
        var header = ImageHeader.Parse(File.ReadAllBytes(path).AsSpan(0, ImageHeader.Size), path);
        var fields = FileImageFields.Read(header)!;
        var moved = (fields with { CatalogOffset = 0, CatalogLength = header.DiskSize }).ApplyTo(header);
        var bytes = new byte[ImageHeader.Size];
        moved.WriteTo(bytes);
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            fs.Write(bytes);
        }

        var r = Cli.Run("verify", path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("BAD ", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("damaged file catalog", r.StdOut, StringComparison.Ordinal);
        Assert.Contains("FAILED", r.StdOut, StringComparison.Ordinal);
    }

    private static void OneLine(ToolResult r, int exitCode, string expected)
    {
        Assert.True(r.ExitCode == exitCode, $"exit {r.ExitCode}, expected {exitCode}: {r.Output}");
        Assert.Contains(expected, r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("unexpected", r.StdErr, StringComparison.Ordinal);
        if (exitCode == 1)
        {
            Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: ", StringComparison.Ordinal));
        }
    }

    private static void MakeTree(string root)
    {
        Directory.CreateDirectory(Path.Combine(root, "sub", "deeper"));
        var big = new byte[1 << 20];
        new Random(5).NextBytes(big);
        File.WriteAllBytes(Path.Combine(root, "big.bin"), big);
        File.WriteAllText(Path.Combine(root, "a.txt"), "a\n");
        File.WriteAllText(Path.Combine(root, "sub", "deeper", "b.txt"), "b\n");
        File.CreateSymbolicLink(Path.Combine(root, "sub", "link"), "../a.txt");
        ExternalTool.Check("find", root, "-exec", "touch", "-h", "-d", $"@{Time}", "{}", "+");
    }

    private static void AssertPoint(string image, string directory)
    {
        using var chain = BackupChain.Open(image);
        using var tree = FileImageTree.Open(chain);
        using var expected = DirectoryFileTree.Scan(directory);
        Assert.Equal(expected.Count, tree.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected.GetEntry(i);
            var a = tree.GetEntry(i);
            Assert.Equal(e with { AccessedUnixNs = 0 }, a with { AccessedUnixNs = 0 });
            if (e.Kind == FileTreeEntryKind.File)
            {
                var want = new byte[e.Size];
                var got = new byte[e.Size];
                expected.ReadFile(i, 0, want);
                tree.ReadFile(i, 0, got);
                Assert.True(want.AsSpan().SequenceEqual(got), $"{e.Name} differs");
            }
        }
    }
}
