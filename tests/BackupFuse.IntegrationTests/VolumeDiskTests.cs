using System.Security.Cryptography;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 14 with the real CLI and real FUSE mounts: ext4 volume backups (used blocks only, and every block), plugins
/// that read as disks with a synthesized partition table, checked by sgdisk, fdisk, qemu-img, e2fsck and debugfs.
/// </summary>
[Collection("mounts")]
public sealed class VolumeDiskTests : IClassFixture<VolumeDiskTests.Volumes>
{
    private const long MiB = 1024 * 1024;
    private readonly Volumes _v;

    public VolumeDiskTests(Volumes volumes)
    {
        _v = volumes;
    }

    /// <summary>Two ext4 volumes (the first over random bytes, so its free space is not zeros) and their backups.</summary>
    public sealed class Volumes : IDisposable
    {
        public Volumes()
        {
            if (!ExternalTool.Exists("mkfs.ext4"))
            {
                return; // the tests skip with the reason
            }

            Directory.CreateDirectory(Images);
            Directory.CreateDirectory(Vms);
            MakeVolume(Dir["a.ext4"], 64, Dir["a-files"], seed: 1);
            MakeVolume(Dir["b.ext4"], 32, Dir["b-files"], seed: 2);
            BackupA = Cli.Ok("backup", Dir["a.ext4"], Path.Combine(Images, "a.bfi"), "--volume").Output;
            Cli.Ok("backup", Dir["a.ext4"], Path.Combine(Images, "a-all.bfi"), "--volume", "--all-blocks");
            Cli.Ok("backup", Dir["b.ext4"], Path.Combine(Images, "b.bfi"), "--volume");
            ImageHashes = HashImages();
        }

        public TempDirectory Dir { get; } = new("bfvol");

        public string Images => Dir["images"];

        public string Vms => Dir["vms"];

        public string BackupA { get; } = string.Empty;

        public string ImageHashes { get; } = string.Empty;

        public string HashImages() => string.Join(",", new[] { "a.bfi", "a-all.bfi", "b.bfi" }.Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(Images, f))))));

        public DaemonProcess Mount() => DaemonProcess.Start(Vms, [Vms, "--images", Images]);

        public void Dispose() => Dir.Dispose();

        private static void MakeVolume(string path, int mib, string files, int seed)
        {
            var rng = new Random(seed);
            byte[] garbage = new byte[mib * MiB];
            rng.NextBytes(garbage);
            File.WriteAllBytes(path, garbage);
            Directory.CreateDirectory(Path.Combine(files, "sub"));
            byte[] big = new byte[3 * MiB];
            rng.NextBytes(big);
            File.WriteAllBytes(Path.Combine(files, "big.bin"), big);
            for (int i = 0; i < 20; i++)
            {
                File.WriteAllText(Path.Combine(files, "sub", $"f{i}.txt"), $"volume {seed} file {i} " + new string('x', i * 300));
            }

            ExternalTool.Check("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", files, path);
        }
    }

    private static void RequireTools()
    {
        Prerequisite.Tool("mkfs.ext4", "e2fsprogs");
        Prerequisite.Tool("sgdisk", "gdisk");
        Prerequisite.Tool("fdisk", "fdisk");
        Prerequisite.Tool("qemu-img", "qemu-utils");
    }

    [SkippableFact]
    public void VolumeImageReadsAsAGptDiskWithThePartitionAt1MiB()
    {
        RequireTools();
        Assert.Contains("content:      volume, file system ext4", Cli.Ok("info", Path.Combine(_v.Images, "a.bfi")).StdOut, StringComparison.Ordinal);
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a-all.bfi"), Path.Combine(_v.Vms, "a-all.raw"));
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a-all.bfi"), Path.Combine(_v.Vms, "a-all.vhdx"));
        using var daemon = _v.Mount();
        string raw = Path.Combine(_v.Vms, "a-all.raw");
        Assert.Equal(66 * MiB, new FileInfo(raw).Length); // 1 MiB + the volume + 1 MiB for the backup GPT
        Assert.Contains("No problems found", ExternalTool.Check("sgdisk", "-v", raw).StdOut, StringComparison.Ordinal);
        var parts = Partitions(raw);
        Assert.Equal([(2048L, 2048L + (64 * 2048) - 1, "8300")], parts);
        string fdisk = ExternalTool.Check("fdisk", "-l", raw).StdOut;
        Assert.Contains("Disklabel type: gpt", fdisk, StringComparison.Ordinal);
        Assert.Matches(@"a-all\.raw1\s+2048\s+133119\s+131072\s+64M Linux filesystem", fdisk);

        // The partition's bytes are the volume's, read through the mount (raw plugin) and through QEMU's VHDX driver.
        Assert.Contains("Images are identical", Compare(raw, "raw", 1 * MiB, 64 * MiB, _v.Dir["a.ext4"]), StringComparison.Ordinal);
        string vhdx = Path.Combine(_v.Vms, "a-all.vhdx");
        Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", vhdx).StdOut, StringComparison.Ordinal);
        Assert.Contains("Images are identical", Compare(vhdx, "vhdx", 1 * MiB, 64 * MiB, _v.Dir["a.ext4"]), StringComparison.Ordinal);
        // ... and not by accident: the other volume differs.
        Assert.DoesNotContain("Images are identical", Compare(raw, "raw", 1 * MiB, 32 * MiB, _v.Dir["b.ext4"]), StringComparison.Ordinal);

        // Deterministic: a second plugin of the same image reads as the same bytes (GUIDs derived from the image).
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a-all.bfi"), Path.Combine(_v.Vms, "a-all-again.raw"));
        Assert.Equal(SHA256.HashData(ReadHead(raw)), SHA256.HashData(ReadHead(Path.Combine(_v.Vms, "a-all-again.raw"))));
        Assert.Equal(_v.ImageHashes, _v.HashImages());
    }

    [SkippableFact]
    public void UsedBlocksBackupStoresOnlyAllocatedBlocksAndChecksClean()
    {
        RequireTools();
        Prerequisite.Tool("e2fsck", "e2fsprogs");
        Assert.Contains("used blocks only", _v.BackupA, StringComparison.Ordinal);
        long used = new FileInfo(Path.Combine(_v.Images, "a.bfi")).Length;
        long all = new FileInfo(Path.Combine(_v.Images, "a-all.bfi")).Length;
        Assert.True(used * 3 < all, $"used-blocks image {used} bytes, every-block image {all} bytes");

        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a.bfi"), Path.Combine(_v.Vms, "a.raw"));
        using var daemon = _v.Mount();
        string volume = Extract(Path.Combine(_v.Vms, "a.raw"), 1 * MiB, 64 * MiB, _v.Dir["a-out.ext4"]);
        CheckClean(volume);
        AssertFilesMatch(volume, _v.Dir["a-files"]);
        // The free space (random bytes in the source) reads as zeros: the bytes differ, the file system does not.
        Assert.DoesNotContain("Images are identical", ExternalTool.Run("qemu-img", ["compare", "-f", "raw", "-F", "raw", volume, _v.Dir["a.ext4"]]).Output, StringComparison.Ordinal);
        // Every free block reads as zeros: count all-zero blocks against e2fsck's free count (the source had none).
        var m = System.Text.RegularExpressions.Regex.Match(ExternalTool.Run("e2fsck", ["-fn", volume]).Output, @"(\d+)/(\d+) blocks");
        long free = long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) - long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        byte[] restored = File.ReadAllBytes(volume);
        int blockSize = (int)(restored.Length / long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        long zeroBlocks = Enumerable.Range(0, restored.Length / blockSize).LongCount(i => restored.AsSpan(i * blockSize, blockSize).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(zeroBlocks >= free, $"{zeroBlocks} all-zero blocks, {free} free blocks");
        Assert.True(free > restored.Length / blockSize / 2, $"the test volume is mostly free ({free} free blocks)");
    }

    [SkippableFact]
    public void TwoVolumeChainsAssembleIntoOneDisk()
    {
        RequireTools();
        Prerequisite.Tool("e2fsck", "e2fsprogs");
        string plugin = Path.Combine(_v.Vms, "two.raw");
        Cli.Ok("plugin", "create", "--volume", Path.Combine(_v.Images, "a.bfi"), "--volume", Path.Combine(_v.Images, "b.bfi"), plugin);
        Assert.StartsWith("backupfuse-plugin 2\n", File.ReadAllText(plugin), StringComparison.Ordinal);
        using var daemon = _v.Mount();
        Assert.Contains("No problems found", ExternalTool.Check("sgdisk", "-v", plugin).StdOut, StringComparison.Ordinal);
        var parts = Partitions(plugin);
        Assert.Equal(2, parts.Count);
        Assert.Equal(2048, parts[0].First);
        Assert.Equal(65 * 2048, parts[1].First); // next 1 MiB boundary after the 64 MiB volume
        Assert.Equal((65 + 32) * 2048 - 1, parts[1].Last);
        string a = Extract(plugin, 1 * MiB, 64 * MiB, _v.Dir["two-a.ext4"]);
        string b = Extract(plugin, 65 * MiB, 32 * MiB, _v.Dir["two-b.ext4"]);
        CheckClean(a);
        CheckClean(b);
        AssertFilesMatch(a, _v.Dir["a-files"]);
        AssertFilesMatch(b, _v.Dir["b-files"]);
    }

    [SkippableFact]
    public void MbrOptionGivesAClassicPartitionTable()
    {
        RequireTools();
        string plugin = Path.Combine(_v.Vms, "mbr.raw");
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a-all.bfi"), plugin, "--mbr");
        using var daemon = _v.Mount();
        string fdisk = ExternalTool.Check("fdisk", "-l", plugin).StdOut;
        Assert.Contains("Disklabel type: dos", fdisk, StringComparison.Ordinal);
        Assert.Matches(@"mbr\.raw1\s+2048\s+133119\s+131072\s+64M 83 Linux", fdisk);
        Assert.Contains("Images are identical", Compare(plugin, "raw", 1 * MiB, 64 * MiB, _v.Dir["a.ext4"]), StringComparison.Ordinal);
    }

    [SkippableFact]
    public void PartitionTableWritesGoToTheChangesAndSurviveARemount()
    {
        RequireTools();
        string plugin = Path.Combine(_v.Vms, "rw.raw");
        Cli.Ok("plugin", "create", "--volume", Path.Combine(_v.Images, "a.bfi"), "--volume", Path.Combine(_v.Images, "b.bfi"), plugin);
        using (var daemon = _v.Mount())
        {
            // Repartition in the guest's place: delete partition 2 and rename partition 1.
            ExternalTool.Check("sgdisk", "-d", "2", "-c", "1:renamed", plugin);
        }

        using (var daemon = _v.Mount())
        {
            Assert.Contains("No problems found", ExternalTool.Check("sgdisk", "-v", plugin).StdOut, StringComparison.Ordinal);
            string print = ExternalTool.Check("sgdisk", "-p", plugin).StdOut;
            Assert.Contains("renamed", print, StringComparison.Ordinal);
            Assert.Single(Partitions(plugin));
        }

        Assert.Equal(_v.ImageHashes, _v.HashImages());
    }

    [SkippableFact]
    public void UncleanFileSystemFallsBackToEveryBlockAndSaysWhy()
    {
        RequireTools();
        Prerequisite.Tool("debugfs", "e2fsprogs");
        string copy = _v.Dir["unclean.ext4"];
        File.Copy(_v.Dir["a.ext4"], copy);
        ExternalTool.Check("debugfs", "-w", "-R", "ssv state 0", copy);
        var r = Cli.Ok("backup", copy, _v.Dir["unclean.bfi"], "--volume");
        Assert.Contains("every block stored: the file system was not cleanly unmounted", r.Output, StringComparison.Ordinal);
        Assert.True(new FileInfo(_v.Dir["unclean.bfi"]).Length > 50 * MiB, "every block is stored");
    }

    [SkippableFact]
    public void IncrementalOfAVolumeRecordsFreedBlocksAsZeros()
    {
        RequireTools();
        Prerequisite.Tool("debugfs", "e2fsprogs");
        Prerequisite.Tool("e2fsck", "e2fsprogs");
        string copy = _v.Dir["inc.ext4"];
        File.Copy(_v.Dir["a.ext4"], copy);
        string blocks = ExternalTool.Check("debugfs", "-R", "blocks /big.bin", copy).StdOut;
        long firstBlock = long.Parse(blocks.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
        ExternalTool.Check("debugfs", "-w", "-R", "rm /big.bin", copy);
        ExternalTool.Check("e2fsck", "-fy", copy);
        Cli.Ok("backup", copy, Path.Combine(_v.Images, "inc.bfi"), "--parent", Path.Combine(_v.Images, "a.bfi"));
        string plugin = Path.Combine(_v.Vms, "inc.raw");
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "inc.bfi"), plugin);
        using var daemon = _v.Mount();
        string volume = Extract(plugin, 1 * MiB, 64 * MiB, _v.Dir["inc-out.ext4"]);
        CheckClean(volume);
        Assert.Contains("f3.txt", ExternalTool.Check("debugfs", "-R", "ls -l /sub", volume).StdOut, StringComparison.Ordinal);
        using var f = File.OpenRead(volume);
        byte[] block = new byte[4096];
        f.Position = firstBlock * 4096;
        f.ReadExactly(block);
        Assert.True(block.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the deleted file's first block (free now) reads as zeros, not as the parent's data");
    }

    [SkippableFact]
    public void ExportAndInfoOfVolumePluginsGiveTheWholeDisk()
    {
        RequireTools();
        Prerequisite.Tool("e2fsck", "e2fsprogs");
        string plugins = _v.Dir["unmounted"];
        Directory.CreateDirectory(plugins);
        string two = Path.Combine(plugins, "two.raw");
        string one = Path.Combine(plugins, "one.raw");
        Cli.Ok("plugin", "create", "--volume", Path.Combine(_v.Images, "a.bfi"), "--volume", Path.Combine(_v.Images, "b.bfi"), two);
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "a-all.bfi"), one);
        string info = Cli.Ok("info", two).StdOut;
        Assert.Contains("with 2 partition(s) (GPT)", info, StringComparison.Ordinal);
        Assert.Contains($"2: {Path.Combine(_v.Images, "b.bfi")} at {65 * MiB}", info, StringComparison.Ordinal);

        Cli.Ok("export", two, _v.Dir["two-export.raw"]);
        Assert.Contains("No problems found", ExternalTool.Check("sgdisk", "-v", _v.Dir["two-export.raw"]).StdOut, StringComparison.Ordinal);
        Assert.Equal(2, Partitions(_v.Dir["two-export.raw"]).Count);
        CheckClean(Extract(_v.Dir["two-export.raw"], 65 * MiB, 32 * MiB, _v.Dir["two-export-b.ext4"]));
        // A single volume's plugin exports its disk too (partition table included); the image itself exports the volume.
        Cli.Ok("export", one, _v.Dir["one-export.raw"]);
        Assert.Equal(66 * MiB, new FileInfo(_v.Dir["one-export.raw"]).Length);
        Assert.Contains("Images are identical", Compare(_v.Dir["one-export.raw"], "raw", 1 * MiB, 64 * MiB, _v.Dir["a.ext4"]), StringComparison.Ordinal);
        Cli.Ok("export", Path.Combine(_v.Images, "a-all.bfi"), _v.Dir["volume-export.raw"]);
        Assert.Equal(File.ReadAllBytes(_v.Dir["a.ext4"]), File.ReadAllBytes(_v.Dir["volume-export.raw"]));
    }

    [SkippableFact]
    public void XfsUsedBlocksBackupRepairsCleanAndADirtyLogStoresEveryBlock()
    {
        RequireTools();
        Prerequisite.Tool("mkfs.xfs", "xfsprogs");
        Prerequisite.Tool("xfs_repair", "xfsprogs");
        Prerequisite.Tool("xfs_io", "xfsprogs");
        string volume = _v.Dir["x.xfs"], mnt = _v.Dir["xmnt"], mnt2 = _v.Dir["xmnt2"];
        Directory.CreateDirectory(mnt);
        Directory.CreateDirectory(mnt2);
        byte[] garbage = new byte[300 * MiB];
        new Random(3).NextBytes(garbage);
        File.WriteAllBytes(volume, garbage);
        ExternalTool.Check("mkfs.xfs", "-q", "-f", volume);
        ExternalTool.Check("mount", "-o", "loop", volume, mnt);
        try
        {
            ExternalTool.Check("cp", "-r", _v.Dir["a-files"], Path.Combine(mnt, "a"));
            ExternalTool.Check("cp", "-r", _v.Dir["b-files"], Path.Combine(mnt, "b"));
        }
        finally
        {
            ExternalTool.Check("umount", mnt);
        }

        var r = Cli.Ok("backup", volume, Path.Combine(_v.Images, "x.bfi"), "--volume");
        Assert.Contains("volume (xfs), used blocks only", r.Output, StringComparison.Ordinal);
        Assert.True(new FileInfo(Path.Combine(_v.Images, "x.bfi")).Length < 150 * MiB, "free space (random bytes) is not stored");
        string plugin = Path.Combine(_v.Vms, "x.raw");
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "x.bfi"), plugin);
        string restored;
        using (var daemon = _v.Mount())
        {
            Assert.Contains("No problems found", ExternalTool.Check("sgdisk", "-v", plugin).StdOut, StringComparison.Ordinal);
            restored = Extract(plugin, 1 * MiB, 300 * MiB, _v.Dir["x-out.xfs"]);
        }

        var repair = ExternalTool.Run("xfs_repair", ["-n", restored]);
        Assert.True(repair.ExitCode == 0, $"xfs_repair -n: {repair.Output}");
        Assert.DoesNotContain("Images are identical", ExternalTool.Run("qemu-img", ["compare", "-f", "raw", "-F", "raw", restored, volume]).Output, StringComparison.Ordinal);
        ExternalTool.Check("mount", "-o", "loop,ro,nouuid", restored, mnt2);
        try
        {
            foreach (var (files, sub) in new[] { (_v.Dir["a-files"], "a"), (_v.Dir["b-files"], "b") })
            {
                foreach (string file in Directory.GetFiles(files, "*", SearchOption.AllDirectories))
                {
                    Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Combine(mnt2, sub, Path.GetRelativePath(files, file))));
                }
            }
        }
        finally
        {
            ExternalTool.Check("umount", mnt2);
        }

        // A log left dirty (forced shutdown, as a crash leaves it): every block is stored, and the backup says why.
        ExternalTool.Check("mount", "-o", "loop", volume, mnt);
        File.WriteAllText(Path.Combine(mnt, "late.txt"), "written before the crash");
        ExternalTool.Check("xfs_io", "-x", "-c", "shutdown -f", mnt);
        ExternalTool.Check("umount", mnt);
        r = Cli.Ok("backup", volume, _v.Dir["x-dirty.bfi"], "--volume");
        Assert.Contains("every block stored: the XFS log is dirty", r.Output, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void NtfsUsedBlocksBackupIsAMicrosoftBasicDataPartitionThatChecksClean()
    {
        RequireTools();
        Prerequisite.Tool("mkntfs", "ntfs-3g");
        Prerequisite.Tool("ntfs-3g", "ntfs-3g");
        Prerequisite.Tool("ntfsfix", "ntfs-3g");
        string volume = _v.Dir["n.ntfs"], mnt = _v.Dir["nmnt"], mnt2 = _v.Dir["nmnt2"];
        Directory.CreateDirectory(mnt);
        Directory.CreateDirectory(mnt2);
        byte[] garbage = new byte[200 * MiB];
        new Random(4).NextBytes(garbage);
        File.WriteAllBytes(volume, garbage);
        ExternalTool.Check("mkntfs", "-q", "-F", "-Q", volume);
        ExternalTool.Check("ntfs-3g", volume, mnt);
        try
        {
            ExternalTool.Check("cp", "-r", _v.Dir["a-files"], Path.Combine(mnt, "a"));
        }
        finally
        {
            ExternalTool.Check("umount", mnt);
        }

        var r = Cli.Ok("backup", volume, Path.Combine(_v.Images, "n.bfi"), "--volume");
        Assert.Contains("volume (ntfs), used blocks only", r.Output, StringComparison.Ordinal);
        Assert.True(new FileInfo(Path.Combine(_v.Images, "n.bfi")).Length < 50 * MiB, "free space (random bytes) is not stored");
        string plugin = Path.Combine(_v.Vms, "n.raw");
        Cli.Ok("plugin", "create", Path.Combine(_v.Images, "n.bfi"), plugin);
        string restored;
        using (var daemon = _v.Mount())
        {
            Assert.Contains("Microsoft basic data", ExternalTool.Check("fdisk", "-l", plugin).StdOut, StringComparison.Ordinal);
            restored = Extract(plugin, 1 * MiB, 200 * MiB, _v.Dir["n-out.ntfs"]);
        }

        var fix = ExternalTool.Run("ntfsfix", ["-n", restored]);
        Assert.True(fix.ExitCode == 0, $"ntfsfix -n: {fix.Output}");
        Assert.DoesNotContain("Images are identical", ExternalTool.Run("qemu-img", ["compare", "-f", "raw", "-F", "raw", restored, volume]).Output, StringComparison.Ordinal);
        ExternalTool.Check("ntfs-3g", "-o", "ro", restored, mnt2);
        try
        {
            foreach (string file in Directory.GetFiles(_v.Dir["a-files"], "*", SearchOption.AllDirectories))
            {
                Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(Path.Combine(mnt2, "a", Path.GetRelativePath(_v.Dir["a-files"], file))));
            }
        }
        finally
        {
            ExternalTool.Check("umount", mnt2);
        }

        // The volume marked dirty (as Windows leaves it after a crash): every block is stored, and the backup says why.
        SetNtfsDirty(volume);
        r = Cli.Ok("backup", volume, _v.Dir["n-dirty.bfi"], "--volume");
        Assert.Contains("every block stored: the NTFS volume is marked dirty", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongPluginCreateUsageIsExitCode2()
    {
        var r = Cli.Run("plugin", "create", "--volume", "/nonexistent/a.bfi", "x.bfi", "y.raw");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("with --volume, give only the plugin file", r.Output, StringComparison.Ordinal);
        r = Cli.Run("plugin", "create", "a.bfi", "y.raw", "--partition-type", "linux");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--partition-type linux: not a GUID", r.Output, StringComparison.Ordinal);
    }

    private static List<(long First, long Last, string Code)> Partitions(string disk)
    {
        var list = new List<(long, long, string)>();
        bool table = false;
        foreach (string line in ExternalTool.Check("sgdisk", "-p", disk).StdOut.Split('\n'))
        {
            if (line.StartsWith("Number", StringComparison.Ordinal))
            {
                table = true;
                continue;
            }

            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (table && f.Length >= 6)
            {
                list.Add((long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture), f[5]));
            }
        }

        return list;
    }

    private static string ImageOpts(string file, string format, long offset, long size) =>
        format == "raw"
            ? $"driver=raw,offset={offset},size={size},file.filename={file}"
            : $"driver=raw,offset={offset},size={size},file.driver={format},file.file.filename={file}";

    private static string Compare(string disk, string format, long offset, long size, string volume) =>
        ExternalTool.Run("qemu-img", ["compare", "--image-opts", ImageOpts(disk, format, offset, size), $"driver=raw,file.filename={volume}"]).Output;

    private static string Extract(string disk, long offset, long size, string dest)
    {
        ExternalTool.Check("qemu-img", "convert", "--image-opts", ImageOpts(disk, "raw", offset, size), "-O", "raw", dest);
        return dest;
    }

    private static void CheckClean(string volume)
    {
        var r = ExternalTool.Run("e2fsck", ["-fn", volume]);
        Assert.True(r.ExitCode == 0, $"e2fsck -fn {volume}: {r.Output}");
    }

    private static void AssertFilesMatch(string volume, string files)
    {
        foreach (string file in Directory.GetFiles(files, "*", SearchOption.AllDirectories))
        {
            string rel = "/" + Path.GetRelativePath(files, file);
            string dumped = volume + ".dump";
            File.Delete(dumped);
            ExternalTool.Check("debugfs", "-R", $"dump {rel} {dumped}", volume);
            Assert.True(File.ReadAllBytes(file).AsSpan().SequenceEqual(File.ReadAllBytes(dumped)), $"{rel} differs in {volume}");
        }
    }

    /// <summary>Sets the dirty flag of $Volume's $VOLUME_INFORMATION (MFT record 3) in place.</summary>
    private static void SetNtfsDirty(string volume)
    {
        using var f = new FileStream(volume, FileMode.Open, FileAccess.ReadWrite);
        byte[] boot = new byte[512];
        f.ReadExactly(boot);
        int clusterSize = BitConverter.ToUInt16(boot, 11) * boot[13];
        int recordSize = (sbyte)boot[64] < 0 ? 1 << -(sbyte)boot[64] : (sbyte)boot[64] * clusterSize;
        long record = (BitConverter.ToInt64(boot, 48) * clusterSize) + (3L * recordSize);
        byte[] r = new byte[recordSize];
        f.Position = record;
        f.ReadExactly(r);
        int at = BitConverter.ToUInt16(r, 20);
        while (BitConverter.ToUInt32(r, at) != 0x70)
        {
            at += (int)BitConverter.ToUInt32(r, at + 4);
        }

        int flags = at + BitConverter.ToUInt16(r, at + 20) + 10;
        Assert.True(flags % 512 < 510, "the flags are not in a sector's fixup bytes");
        f.Position = record + flags;
        f.WriteByte((byte)(r[flags] | 1));
    }

    private static byte[] ReadHead(string path)
    {
        using var f = File.OpenRead(path);
        byte[] head = new byte[64 * 1024];
        f.ReadExactly(head);
        return head;
    }
}
