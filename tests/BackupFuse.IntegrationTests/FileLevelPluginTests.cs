using System.Security.Cryptography;
using System.Text;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 13 end to end with the real CLI and real FUSE mounts: a directory backed up file by file (full + incremental),
/// plugins that read as disks whose partition holds a synthesized exFAT or FAT32 file system, checked by drivers and
/// checkers nobody here wrote (fsck.exfat, exfat-fuse, fsck.vfat, 7-Zip) and by QEMU's VHDX driver.
/// </summary>
[Collection("mounts")]
public sealed class FileLevelPluginTests : IClassFixture<FileLevelPluginTests.Backups>
{
    private const long MiB = 1024 * 1024;
    private readonly Backups _b;

    public FileLevelPluginTests(Backups backups)
    {
        _b = backups;
    }

    /// <summary>A source tree, its full file-level backup, then a change and its incremental.</summary>
    public sealed class Backups : IDisposable
    {
        public Backups()
        {
            Directory.CreateDirectory(Images);
            Directory.CreateDirectory(Vms);
            string src = Dir["src"];
            Directory.CreateDirectory(Path.Combine(src, "sub", "deeper"));
            var rng = new Random(13);
            byte[] big = new byte[(3 * MiB) + 12345];
            rng.NextBytes(big);
            File.WriteAllBytes(Path.Combine(src, "sub", "big.bin"), big);
            File.WriteAllText(Path.Combine(src, "a.txt"), "first version");
            File.WriteAllText(Path.Combine(src, "Case.txt"), "upper");
            File.WriteAllText(Path.Combine(src, "case.txt"), "lower");
            File.WriteAllText(Path.Combine(src, "co:lon"), "colon");
            File.WriteAllText(Path.Combine(src, "empty"), string.Empty);
            File.WriteAllText(Path.Combine(src, "sub", "deeper", "ünïcødé 文件.txt"), "unicode");
            File.CreateSymbolicLink(Path.Combine(src, "link"), "a.txt");
            FullExpected = Expected(src);
            Cli.Ok("backup", "--files", src, Path.Combine(Images, "full.bfi"));

            File.WriteAllText(Path.Combine(src, "a.txt"), "second version, longer");
            File.WriteAllText(Path.Combine(src, "new.txt"), "only in the incremental");
            File.Delete(Path.Combine(src, "empty"));
            IncrementalExpected = Expected(src);
            Cli.Ok("backup", "--files", src, Path.Combine(Images, "inc.bfi"), "--parent", Path.Combine(Images, "full.bfi"));
            ImageHashes = HashImages();
        }

        public TempDirectory Dir { get; } = new("bffiles");

        public string Images => Dir["images"];

        public string Vms => Dir["vms"];

        public Dictionary<string, string> FullExpected { get; } = [];

        public Dictionary<string, string> IncrementalExpected { get; } = [];

        public string ImageHashes { get; } = string.Empty;

        public string HashImages() => string.Join(",", new[] { "full.bfi", "inc.bfi" }.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(Images, f))))));

        public DaemonProcess Mount() => DaemonProcess.Start(Vms, [Vms, "--images", Images]);

        public void Dispose() => Dir.Dispose();

        /// <summary>Relative path (as the FAT/exFAT volume stores it) to SHA-256 of the content, for every regular file.</summary>
        private static Dictionary<string, string> Expected(string root) =>
            Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Where(f => new FileInfo(f).LinkTarget == null)
                .ToDictionary(f => Stored(Path.GetRelativePath(root, f)), f => Hash(File.ReadAllBytes(f)));

        /// <summary>The names FatLongNames maps here: the second of a case collision, and a forbidden character.</summary>
        private static string Stored(string relative) => relative switch
        {
            "case.txt" => "case~2.txt",
            "co:lon" => "co_lon",
            _ => relative,
        };
    }

    private static string Hash(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    [SkippableFact]
    public void IncrementalReadsAsAnExFatDiskThatCheckersAndAnotherDriverAccept()
    {
        Prerequisite.Tool("fsck.exfat", "exfatprogs");
        Prerequisite.Tool("mount.exfat-fuse", "exfat-fuse");
        Prerequisite.Tool("losetup", "mount");
        Prerequisite.Tool("qemu-img", "qemu-utils");
        string raw = Path.Combine(_b.Vms, "inc.raw");
        string vhdx = Path.Combine(_b.Vms, "inc.vhdx");
        var created = Cli.Ok("plugin", "create", Path.Combine(_b.Images, "inc.bfi"), raw);
        Assert.Contains("files as exFAT", created.Output, StringComparison.Ordinal);
        Assert.Contains("3 name(s) the file system cannot hold", created.Output, StringComparison.Ordinal); // case~2.txt, co_lon, the symlink
        Cli.Ok("plugin", "create", Path.Combine(_b.Images, "inc.bfi"), vhdx);
        using (var info = System.Text.Json.JsonDocument.Parse(Cli.Ok("info", raw, "--json").StdOut))
        {
            Assert.Equal("exfat", info.RootElement.GetProperty("presentedAs").GetString());
            var mapped = info.RootElement.GetProperty("nameMappings").EnumerateArray()
                .Select(m => (m.GetProperty("path").GetString(), m.GetProperty("storedName").GetString())).ToList();
            Assert.Equal([("case.txt", "case~2.txt"), ("co:lon", "co_lon"), ("link", null)], mapped.OrderBy(m => m.Item1, StringComparer.Ordinal));
        }

        Assert.Contains("presented as: exFAT, 3 name(s)", Cli.Ok("info", raw).StdOut, StringComparison.Ordinal);
        using var daemon = _b.Mount();

        // QEMU's VHDX driver reads the same disk as the raw view.
        Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", vhdx).StdOut, StringComparison.Ordinal);
        Assert.Contains("Images are identical", ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", vhdx, raw]).Output, StringComparison.Ordinal);

        var (offset, length) = GptDisk.FirstPartition(raw);
        Assert.Equal(1 * MiB, offset);
        string volume = GptDisk.Extract(raw, offset, length, _b.Dir["inc.exfat"]);
        var fsck = ExternalTool.Run("fsck.exfat", ["-n", volume]);
        Assert.True(fsck.ExitCode == 0, fsck.Output);
        Assert.Equal(_b.IncrementalExpected, ReadThroughExFatFuse(volume));

        // Deterministic: another plugin of the same point reads as the same bytes.
        string again = Path.Combine(_b.Vms, "inc-again.raw");
        Cli.Ok("plugin", "create", Path.Combine(_b.Images, "inc.bfi"), again);
        Assert.Equal(Hash(File.ReadAllBytes(raw)), Hash(File.ReadAllBytes(again)));

        // export of the image itself gives that disk too (not the image's internal data stream).
        string exported = _b.Dir["inc-export.img"];
        Cli.Ok("export", Path.Combine(_b.Images, "inc.bfi"), exported);
        Assert.Equal(Hash(File.ReadAllBytes(raw)), Hash(File.ReadAllBytes(exported)));
        Assert.Equal(_b.ImageHashes, _b.HashImages());
    }

    [SkippableFact]
    public void EveryPointOfTheChainReadsCompleteAsFat32()
    {
        Prerequisite.Tool("fsck.vfat", "dosfstools");
        Prerequisite.Tool("7zz", "7zip");
        foreach (var (image, expected) in new[] { ("full", _b.FullExpected), ("inc", _b.IncrementalExpected) })
        {
            string plugin = Path.Combine(_b.Vms, image + "-fat32.raw");
            Cli.Ok("plugin", "create", "--filesystem", "fat32", Path.Combine(_b.Images, image + ".bfi"), plugin);
            Assert.Contains("filesystem = fat32", File.ReadAllText(plugin), StringComparison.Ordinal);
        }

        using var daemon = _b.Mount();
        foreach (var (image, expected) in new[] { ("full", _b.FullExpected), ("inc", _b.IncrementalExpected) })
        {
            string plugin = Path.Combine(_b.Vms, image + "-fat32.raw");
            var (offset, length) = GptDisk.FirstPartition(plugin);
            string volume = GptDisk.Extract(plugin, offset, length, _b.Dir[image + ".fat32"]);
            var fsck = ExternalTool.Run("fsck.vfat", ["-n", volume]);
            Assert.True(fsck.ExitCode == 0, fsck.Output);
            string outDir = _b.Dir[image + "-7z"];
            ExternalTool.Check("7zz", "x", "-y", "-o" + outDir, volume);
            Assert.Equal(expected, Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories)
                .ToDictionary(f => Path.GetRelativePath(outDir, f), f => Hash(File.ReadAllBytes(f))));
        }

        Assert.Equal(_b.ImageHashes, _b.HashImages());
    }

    [SkippableFact]
    public void FileSystemOptionIsRefusedForABlockImage()
    {
        string disk = _b.Dir["disk.raw"];
        File.WriteAllBytes(disk, new byte[4 * MiB]);
        Cli.Ok("backup", disk, Path.Combine(_b.Dir.Path, "disk.bfi"));
        var r = Cli.Run("plugin", "create", "--filesystem", "fat32", Path.Combine(_b.Dir.Path, "disk.bfi"), Path.Combine(_b.Vms, "disk.vhdx"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--filesystem applies to file-level images", r.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_b.Vms, "disk.vhdx")));
    }

    /// <summary>Mounts the volume read-only with exfat-fuse (through a read-only loop device) and hashes every file.</summary>
    private Dictionary<string, string> ReadThroughExFatFuse(string volume)
    {
        string mnt = _b.Dir["exfat-mnt"];
        Directory.CreateDirectory(mnt);
        string loop = ExternalTool.Check("losetup", "-r", "-f", "--show", volume).StdOut.Trim();
        try
        {
            ExternalTool.Check("mount.exfat-fuse", "-o", "ro", loop, mnt);
            try
            {
                return Directory.EnumerateFiles(mnt, "*", SearchOption.AllDirectories)
                    .ToDictionary(f => Path.GetRelativePath(mnt, f), f => Hash(File.ReadAllBytes(f)));
            }
            finally
            {
                ExternalTool.Run("umount", [mnt]);
            }
        }
        finally
        {
            ExternalTool.Run("losetup", ["-d", loop]);
        }
    }
}
