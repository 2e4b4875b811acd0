using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using BackupFuse.Core.FileSystems.Fat32;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Core.Tests;

// Design notes:
// - The oracles are FAT implementations nobody here wrote: fsck.vfat (dosfstools) must find the volume clean,
//   fusefat mounts it (FUSE, read-only) and 7zz extracts it, and both must give back the source tree under the
//   mapped names, byte for byte, with mtimes within FAT's 2 s; mtools' mdir lists the root. The tools run with
//   TZ=UTC because FAT times are local times to them and we write UTC.
// - fusefat 0.1a has two defects of its own, seen on a volume made by mkfs.fat + mcopy too: it lists the volume
//   label entry as a file ("ORACLET.EST") and decodes the month one too high. So through fusefat we compare names,
//   sizes and bytes (ignoring the label entry), and the mtimes through 7zz.
// - The volume is written to a sparse raw file through GetExtent (free space skipped), which checks the extents.
public sealed class Fat32VolumeTests(ITestOutputHelper output)
{
    private const uint RegularMode = 0x81A4;
    private const uint DirMode = 0x41ED;
    private static readonly Dictionary<string, string> Utc = new() { ["TZ"] = "UTC", ["MTOOLS_SKIP_CHECK"] = "1" };

    [SkippableFact]
    public void ScannedDirectory_IsCleanForFsck_AndReadsBackThroughFusefat7zipAndMtools()
    {
        Prerequisite.Tool("fsck.vfat", "dosfstools");
        Prerequisite.Tool("fusefat", "fusefat");
        Prerequisite.Tool("7zz", "7zip");
        Prerequisite.Tool("mdir", "mtools");
        Prerequisite.SkipIf(File.Exists("/dev/fuse") ? null : "/dev/fuse is missing");

        using var work = new TempDirectory("bf-fat32");
        string src = work["src"];
        MakeSourceTree(src);
        var tree = DirectoryFileTree.Scan(src);
        using var volume = new Fat32Volume(tree, new Fat32VolumeOptions { Seed = "oracle", VolumeLabel = "Oracle Test" });
        Assert.Equal(4096, volume.Geometry.ClusterSize); // so "exact.bin" (3 clusters) is an exact multiple
        Assert.True(volume.Geometry.ClusterCount >= Fat32Geometry.Fat32MinClusters);
        var expected = ExpectedPaths(tree, volume);
        Assert.Contains(volume.Mappings, m => m.Path == "link" && m.StoredName == null);
        Assert.Contains(volume.Mappings, m => m.Path == "fifo" && m.StoredName == null);
        Assert.Contains(volume.Mappings, m => m.Path == "names/a:b.txt" && m.StoredName == "a_b.txt");
        Assert.Contains(volume.Mappings, m => m.Path == "names/trail." && m.StoredName == "trail_");
        Assert.Contains(volume.Mappings, m => m.Path.StartsWith("names/", StringComparison.Ordinal) && m.Reason == "case collision");
        Assert.DoesNotContain(expected.Keys, p => p.EndsWith("link", StringComparison.Ordinal) || p.EndsWith("fifo", StringComparison.Ordinal));

        string raw = work["fat32.raw"];
        WriteSparse(volume, raw);

        AssertFsckClean(raw);

        var mdir = ExternalTool.Run("mdir", ["-i", raw, "::/"], TimeSpan.FromMinutes(1), Utc);
        Assert.True(mdir.ExitCode == 0, mdir.Output);
        Assert.Contains("ORACLE TEST", mdir.Output, StringComparison.Ordinal);
        Assert.Contains("empty.txt", mdir.Output, StringComparison.Ordinal);
        Assert.Contains("many", mdir.Output, StringComparison.Ordinal);

        string extracted = work["x"];
        var x = ExternalTool.Run("7zz", ["x", "-y", "-o" + extracted, raw], TimeSpan.FromMinutes(2), Utc);
        Assert.True(x.ExitCode == 0, x.Output);
        var list = ExternalTool.Run("7zz", ["l", "-slt", raw], TimeSpan.FromMinutes(2), Utc);
        Assert.True(list.ExitCode == 0, list.Output);
        var listed = list.StdOut.Split('\n').Where(l => l.StartsWith("Path = ", StringComparison.Ordinal)).Skip(1).Select(l => l[7..].TrimEnd('\r'));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), listed.Order(StringComparer.Ordinal));
        CompareWithSource(extracted, expected, tree, checkTimes: true);

        string mnt = work["mnt"];
        Directory.CreateDirectory(mnt);
        var mount = ExternalTool.Run("fusefat", ["-o", "ro", raw, mnt], TimeSpan.FromMinutes(1), Utc);
        Assert.True(mount.ExitCode == 0, mount.Output);
        try
        {
            CompareWithSource(mnt, expected, tree, checkTimes: false, ignore: "ORACLET.EST");
        }
        finally
        {
            ExternalTool.Run("umount", [mnt], TimeSpan.FromSeconds(30));
        }
    }

    [SkippableFact]
    public void NamesFatCannotHold_AreMappedListedAndReadable()
    {
        Prerequisite.Tool("fsck.vfat", "dosfstools");
        Prerequisite.Tool("7zz", "7zip");
        string longName = new string('L', 296) + ".txt"; // 300 UTF-16 units: only a catalog can hold it
        byte[] data = Encoding.UTF8.GetBytes("long name content");
        var b = new FileTreeBuilder();
        b.Add(longName, FileTreeEntryKind.File, data.Length, 0, 0, RegularMode, content: Reader(data));
        b.Add("Same", FileTreeEntryKind.File, 0, 0, 0, RegularMode);
        b.Add("SAME", FileTreeEntryKind.File, 0, 0, 0, RegularMode);
        b.Add("q?.txt", FileTreeEntryKind.File, 0, 0, 0, RegularMode);
        b.Add("dev", FileTreeEntryKind.Other, 0, 0, 0, 0x2180);
        b.Add("ln", FileTreeEntryKind.Symlink, 0, 0, 0, 0xA1FF, "Same");
        using var volume = new Fat32Volume(b.Build(), new Fat32VolumeOptions { FreeSpaceHeadroom = 0 });

        var byPath = volume.Mappings.ToDictionary(m => m.Path);
        Assert.Equal(5, byPath.Count);
        var cut = byPath[longName].StoredName!;
        Assert.Equal(FatLongNames.MaxLength, cut.Length);
        Assert.EndsWith(".txt", cut, StringComparison.Ordinal);
        Assert.Equal("longer than 255 UTF-16 units", byPath[longName].Reason);
        Assert.Equal(("Same~2", "case collision"), (byPath["Same"].StoredName, byPath["Same"].Reason)); // UTF-8 order: "SAME" < "Same"
        Assert.Equal("q_.txt", byPath["q?.txt"].StoredName);
        Assert.Null(byPath["dev"].StoredName);
        Assert.Null(byPath["ln"].StoredName);

        using var work = new TempDirectory("bf-fat32n");
        string raw = work["n.raw"];
        WriteSparse(volume, raw);
        AssertFsckClean(raw);
        var x = ExternalTool.Run("7zz", ["x", "-y", "-o" + work["x"], raw], TimeSpan.FromMinutes(1), Utc);
        Assert.True(x.ExitCode == 0, x.Output);
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(work["x"], cut)));
        Assert.Equal(
            new[] { cut, "q_.txt", "SAME", "Same~2" }.Order(StringComparer.Ordinal),
            Directory.GetFileSystemEntries(work["x"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void FilesOver4GiB_AreRefusedByName()
    {
        var b = new FileTreeBuilder();
        FileContentReader zeros = (_, buf) => buf.Clear();
        b.Add("big/huge.bin", FileTreeEntryKind.File, 5L << 30, 0, 0, RegularMode, content: zeros);
        b.Add("big/max.bin", FileTreeEntryKind.File, uint.MaxValue, 0, 0, RegularMode, content: zeros); // exactly the limit: fine
        b.Add("ok.txt", FileTreeEntryKind.File, 1, 0, 0, RegularMode, content: zeros);
        var e = Assert.Throws<FileTooLargeForFat32Exception>(() => new Fat32Volume(b.Build()));
        Assert.Equal(["big/huge.bin"], e.Paths);
        Assert.Contains("big/huge.bin", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("max.bin", e.Message, StringComparison.Ordinal);

        for (int i = 0; i < 7; i++)
        {
            b.Add($"more/f{i}", FileTreeEntryKind.File, 1L << 32, 0, 0, RegularMode, content: zeros);
        }

        var many = Assert.Throws<FileTooLargeForFat32Exception>(() => new Fat32Volume(b.Build()));
        Assert.Equal(8, many.Paths.Count);
        Assert.Contains("and 3 more", many.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VolumesNear2TiB_ShrinkTheDefaultHeadroom_BeyondAreRefusedClearly()
    {
        // BPB_TotSec32 caps a FAT32 volume at 2^32 - 1 sectors (2 TiB): the default headroom shrinks to fit.
        static IFileTree Files(int count)
        {
            var b = new FileTreeBuilder();
            for (int i = 0; i < count; i++)
            {
                b.Add($"f{i}", FileTreeEntryKind.File, uint.MaxValue, 0, 0, RegularMode, content: (_, buf) => buf.Clear());
            }

            return b.Build();
        }

        using var nearly = new Fat32Volume(Files(470)); // 1.84 TiB of files: 25 % more would not fit
        Assert.InRange(nearly.Geometry.TotalSectors, 1L << 31, uint.MaxValue);
        Assert.Equal(Fat32Geometry.MaxClustersFor(nearly.Geometry.ClusterSize), nearly.Geometry.ClusterCount);
        var info = new byte[512];
        nearly.Read(512, info);
        Assert.Equal((uint)(nearly.Geometry.ClusterCount - nearly.UsedClusters), BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(488)));

        var e = Assert.Throws<InvalidDataException>(() => new Fat32Volume(Files(600)));
        Assert.Contains("a FAT32 volume can have at most", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SameTreeAndOptions_GiveTheSameBytes_ASeedChangesTheSerial()
    {
        var b = SmallTreeBuilder();
        var options = new Fat32VolumeOptions { Seed = "s1", FreeSpaceHeadroom = 1 << 20 };
        using var one = new Fat32Volume(b.Build(), options);
        using var two = new Fat32Volume(b.Build(), options);
        using var other = new Fat32Volume(b.Build(), options with { Seed = "s2" });
        Assert.Equal(BlockSourceHash.Sha256(one), BlockSourceHash.Sha256(two));
        Assert.NotEqual(BlockSourceHash.Sha256(one), BlockSourceHash.Sha256(other));
    }

    [Fact]
    public void Directories_HoldDotEntriesLongNamesAndShortNames_FatChainsFollowTheRuns()
    {
        var b = SmallTreeBuilder();
        var tree = b.Build();
        using var volume = new Fat32Volume(tree, new Fat32VolumeOptions { FreeSpaceHeadroom = 0, VolumeLabel = "" });
        var g = volume.Geometry;
        Assert.Equal(512, g.ClusterSize); // a small volume: the table's smallest cluster, grown to the FAT32 minimum
        Assert.Equal(Fat32Geometry.MinClusters, g.ClusterCount);

        var root = ParseDirectory(volume, 0, tree);
        Assert.Equal(["README.TXT", "Readme.md", "sub"], root.Select(r => r.Name));
        Assert.Equal("README  TXT", root[0].Short);
        Assert.Equal("README  MD ", root[1].Short);
        Assert.Equal(FatDirectoryEntry.Archive | FatDirectoryEntry.ReadOnly, root[1].Attributes); // mode 0444
        int sub = Enumerable.Range(0, tree.Count).First(i => tree.GetEntry(i).Name == "sub");
        var subEntries = ParseDirectory(volume, sub, tree);
        Assert.Equal([".", "..", "a file with a long name.txt"], subEntries.Select(r => r.Name));
        Assert.Equal(volume.FirstClusterOf(sub), subEntries[0].Cluster);
        Assert.Equal(0u, subEntries[1].Cluster); // ".." of a child of the root points to 0

        // The 3000-byte file: 6 clusters chained c -> c+1, the last EOC.
        int big = Enumerable.Range(0, tree.Count).First(i => tree.GetEntry(i).Name == "a file with a long name.txt");
        uint first = volume.FirstClusterOf(big);
        for (uint c = first; c < first + 6; c++)
        {
            uint next = FatEntry(volume, c);
            Assert.Equal(c == first + 5 ? 0x0FFFFFFFu : c + 1, next);
            Assert.Equal(next, FatEntry(volume, c, secondFat: true));
        }

        Assert.Equal(0u, FatEntry(volume, (uint)(volume.UsedClusters + 2))); // first free cluster
        long freeEntry = g.FatOffset + ((volume.UsedClusters + 2) * 4);
        Assert.Equal(new Extent(g.FatOffset, freeEntry - g.FatOffset, ExtentKind.Data), volume.GetExtent(g.FatOffset, g.FatBytes));
        Assert.Equal(new Extent(freeEntry, g.FatOffset + g.FatBytes - freeEntry, ExtentKind.Zero), volume.GetExtent(freeEntry, g.FatBytes));
        Assert.Equal(ExtentKind.Data, volume.GetExtent(g.FatOffset + g.FatBytes, 4).Kind); // the second FAT starts over
        Assert.Equal(ExtentKind.Zero, volume.GetExtent(g.ClusterOffset(volume.UsedClusters + 2), 4).Kind);
        var info = new byte[512];
        volume.Read(512, info);
        Assert.Equal((uint)(g.ClusterCount - volume.UsedClusters), BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(488)));
        var data = new byte[3000];
        volume.Read(g.ClusterOffset(first), data);
        Assert.Equal(Pattern(3000, 5), data);
    }

    [Fact]
    public void ShortNames_NumericTailsThenHashTails_UniqueAndDeterministic()
    {
        var names = Enumerable.Range(0, 1200).Select(i => $"Long File Name {i}.txt").Append("LONGFI~1.TXT").ToList();
        var shorts = FatShortNames.Assign(names);
        Assert.Equal(shorts, FatShortNames.Assign(names));
        Assert.Equal(names.Count, shorts.Distinct(StringComparer.Ordinal).Count());
        Assert.All(shorts, s => Assert.Equal(11, s.Length));
        Assert.Equal("LONGFI~1TXT", shorts[^1]); // an exact 8.3 name keeps its name; the tails go around it
        Assert.Equal("LONGFI~2TXT", shorts[0]);
        Assert.Equal("LONGFI~9TXT", shorts[7]);
        Assert.Matches("^LO[0-9A-F]{4}~[1-9]TXT$", shorts[8]);
        Assert.False(FatShortNames.NeedsLongName("LONGFI~1.TXT"));
        Assert.True(FatShortNames.NeedsLongName("readme.txt"));
        Assert.Equal("README  TXT", FatShortNames.Assign(["readme.txt"])[0]);
        Assert.Equal("BASHRC~1   ", FatShortNames.Assign([".bashrc"])[0]);
        Assert.Equal("___~1   TXT", FatShortNames.Assign(["日本語.txt"])[0]);
    }

    [Fact]
    public void DirectoryWithTooManyEntries_IsRefusedByName()
    {
        var b = new FileTreeBuilder();
        for (int i = 0; i < 22000; i++)
        {
            b.Add($"crowded/a long file name number {i}", FileTreeEntryKind.File, 0, 0, 0, RegularMode); // 4 entries each
        }

        var e = Assert.Throws<InvalidDataException>(() => new Fat32Volume(b.Build()));
        Assert.Contains("'crowded'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MillionEntries_ConstructLazily_ReadRootAndDeepDirectory()
    {
        var b = new FileTreeBuilder();
        for (int d = 0; d < 4000; d++)
        {
            string dir = $"top{d % 20}/mid{d % 200}/dir{d}";
            for (int f = 0; f < 252; f++)
            {
                b.Add($"{dir}/file {f}.dat", FileTreeEntryKind.File, 0, 0, 0, RegularMode);
            }
        }

        var tree = b.Build();
        Assert.True(tree.Count > 1_000_000);
        GC.Collect();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var sw = Stopwatch.StartNew();
        using var volume = new Fat32Volume(tree);
        long constructMs = sw.ElapsedMilliseconds;
        var root = ParseDirectory(volume, 0, tree);
        int deep = Enumerable.Range(0, tree.Count).Last(i => tree.GetEntry(i).Kind == FileTreeEntryKind.Directory);
        var deepEntries = ParseDirectory(volume, deep, tree);
        long totalMs = sw.ElapsedMilliseconds;
        long after = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"{tree.Count} entries: construct {constructMs} ms, + reading root and one deep directory {totalMs - constructMs} ms; volume {volume.Length >> 20} MiB; managed memory held by the volume {(after - before) >> 20} MiB");
        Assert.Equal(21, root.Count); // label + top0..top19
        Assert.Equal(2 + 252, deepEntries.Count);
        Assert.Equal("file 0.dat", deepEntries[2].Name);
    }

    private static FileContentReader Reader(byte[] data) => (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf);

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static FileTreeBuilder SmallTreeBuilder()
    {
        var b = new FileTreeBuilder();
        long t = 1_700_000_001_123_000_000;
        b.SetRoot(t, t, DirMode);
        byte[] big = Pattern(3000, 5);
        b.Add("sub/a file with a long name.txt", FileTreeEntryKind.File, big.Length, t, t, RegularMode, content: Reader(big));
        b.Add("README.TXT", FileTreeEntryKind.File, 2, t, t, RegularMode, content: Reader("hi"u8.ToArray()));
        b.Add("Readme.md", FileTreeEntryKind.File, 0, t, t, 0x8124);
        b.Add("sub", FileTreeEntryKind.Directory, 0, t, t, DirMode);
        return b;
    }

    private static void MakeSourceTree(string src)
    {
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "empty.txt"), []);
        File.WriteAllBytes(Path.Combine(src, "one.bin"), [42]);
        File.WriteAllBytes(Path.Combine(src, "exact.bin"), Pattern(3 * 4096, 1));
        File.WriteAllBytes(Path.Combine(src, "random.bin"), Pattern((5 << 20) + 321, 2));
        string deep = src;
        for (int i = 0; i < 20; i++)
        {
            deep = Path.Combine(deep, $"level {i}");
        }

        Directory.CreateDirectory(deep);
        File.WriteAllText(Path.Combine(deep, "bottom.txt"), "deep");
        Directory.CreateDirectory(Path.Combine(src, "many"));
        for (int i = 0; i < 1200; i++)
        {
            File.WriteAllText(Path.Combine(src, "many", $"Long File Name {i}.txt"), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        string names = Path.Combine(src, "names");
        Directory.CreateDirectory(names);
        foreach (var n in new[] { "Ünïcödé.txt", "日本語のファイル.txt", "😀 emoji.txt", "Case.txt", "case.txt", "CASE.TXT", "a:b.txt", "trail.", "name with spaces", ".hidden", new string('n', 250) + ".txt" })
        {
            File.WriteAllText(Path.Combine(names, n), n);
        }

        File.CreateSymbolicLink(Path.Combine(src, "link"), "one.bin");
        ExternalTool.Check("mkfifo", Path.Combine(src, "fifo"));
        var mtime = new DateTime(2021, 6, 7, 8, 9, 11, 500, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(Path.Combine(src, "one.bin"), mtime);
    }

    /// <summary>Stored path ('/'-separated) of every entry the volume holds, to its tree index.</summary>
    private static Dictionary<string, int> ExpectedPaths(IFileTree tree, Fat32Volume volume)
    {
        var mapped = volume.Mappings.ToDictionary(m => m.Entry);
        var stored = new string?[tree.Count];
        stored[0] = string.Empty;
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 1; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            string? name = mapped.TryGetValue(i, out var m) ? m.StoredName : e.Name;
            if (name == null || stored[e.Parent] == null)
            {
                continue;
            }

            stored[i] = stored[e.Parent]!.Length == 0 ? name : stored[e.Parent] + "/" + name;
            result.Add(stored[i]!, i);
        }

        return result;
    }

    private static void CompareWithSource(string root, Dictionary<string, int> expected, IFileTree tree, bool checkTimes, string? ignore = null)
    {
        var actual = Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(root, p).Replace('\\', '/'))
            .Where(p => p != ignore)
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual);
        foreach (var (path, index) in expected)
        {
            var e = tree.GetEntry(index);
            string full = Path.Combine(root, path);
            var mtime = DateTime.UnixEpoch.AddTicks(e.ModifiedUnixNs / 100);
            if (e.Kind == FileTreeEntryKind.File)
            {
                var content = new byte[e.Size];
                tree.ReadFile(index, 0, content);
                Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(full)), $"{path}: content differs");
                if (checkTimes)
                {
                    AssertClose(mtime, File.GetLastWriteTimeUtc(full), path);
                }
            }
        }
    }

    /// <summary>
    /// fsck.vfat -n exits 0 and says nothing but its banner and the summary line: it exits 0 on some problems it
    /// only reports (a long name whose checksum does not match its short name, for one).
    /// </summary>
    private static void AssertFsckClean(string raw)
    {
        var fsck = ExternalTool.Run("fsck.vfat", ["-n", raw], TimeSpan.FromMinutes(2), Utc);
        Assert.True(fsck.ExitCode == 0, $"fsck.vfat -n exited {fsck.ExitCode}: {fsck.Output}");
        var lines = fsck.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 2 && lines[0].StartsWith("fsck.fat", StringComparison.Ordinal), $"fsck.vfat -n reported: {fsck.Output}");
        Assert.Matches(@": \d+ files, \d+/\d+ clusters$", lines[1]);
    }

    private static void AssertClose(DateTime expected, DateTime actual, string path) =>
        Assert.True(Math.Abs((expected - actual).TotalSeconds) <= 2, $"{path}: mtime {actual:O}, expected {expected:O}");

    private static void WriteSparse(Fat32Volume volume, string path)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        f.SetLength(volume.Length);
        var buffer = new byte[1 << 20];
        long pos = 0;
        while (pos < volume.Length)
        {
            var e = volume.GetExtent(pos, volume.Length - pos);
            if (e.Kind == ExtentKind.Data)
            {
                for (long at = e.Offset; at < e.End; at += buffer.Length)
                {
                    int n = (int)Math.Min(buffer.Length, e.End - at);
                    volume.Read(at, buffer.AsSpan(0, n));
                    f.Position = at;
                    f.Write(buffer, 0, n);
                }
            }

            pos = e.End;
        }
    }


    private static uint FatEntry(Fat32Volume volume, uint cluster, bool secondFat = false)
    {
        var bytes = new byte[4];
        volume.Read(volume.Geometry.FatOffset + (secondFat ? volume.Geometry.FatBytes : 0) + (cluster * 4L), bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes);
    }

    /// <summary>The entries of directory <paramref name="dir"/> as a FAT reader sees them (long name when its checksum matches).</summary>
    private static List<(string Name, string Short, byte Attributes, uint Cluster)> ParseDirectory(Fat32Volume volume, int dir, IFileTree tree)
    {
        _ = tree;
        var g = volume.Geometry;
        var result = new List<(string, string, byte, uint)>();
        var entry = new byte[32];
        var parts = new SortedDictionary<int, string>();
        byte checksum = 0;
        for (long at = g.ClusterOffset(volume.FirstClusterOf(dir)); ; at += 32)
        {
            volume.Read(at, entry);
            if (entry[0] == 0)
            {
                return result;
            }

            if (entry[11] == FatDirectoryEntry.LongName)
            {
                var chars = new StringBuilder();
                foreach (int o in new[] { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 })
                {
                    chars.Append((char)BinaryPrimitives.ReadUInt16LittleEndian(entry.AsSpan(o)));
                }

                parts[entry[0] & 0x3F] = chars.ToString();
                checksum = entry[13];
                continue;
            }

            string shortName = Encoding.ASCII.GetString(entry, 0, 11);
            string name = parts.Count > 0 && checksum == FatShortNames.Checksum(entry)
                ? string.Concat(parts.Values).Split('\0')[0]
                : shortName[..8].TrimEnd() + (shortName[8..].Trim().Length > 0 ? "." + shortName[8..].TrimEnd() : string.Empty);
            parts.Clear();
            uint cluster = ((uint)BinaryPrimitives.ReadUInt16LittleEndian(entry.AsSpan(20)) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(entry.AsSpan(26));
            result.Add((name, shortName, entry[11], cluster));
        }
    }
}

/// <summary>The block-source contract, held by a synthesized FAT32 volume (expected bytes from a second instance).</summary>
public sealed class Fat32VolumeConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        IFileTree Tree()
        {
            var b = new FileTreeBuilder();
            var data = new byte[70_000];
            new Random(9).NextBytes(data);
            for (int i = 0; i < 40; i++)
            {
                b.Add($"d{i % 4}/file number {i}.bin", FileTreeEntryKind.File, 1000 * i, i, i, 0x81A4, content: (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf));
            }

            return b.Build();
        }

        using var reference = new Fat32Volume(Tree(), new Fat32VolumeOptions { FreeSpaceHeadroom = 0 });
        var expected = new byte[reference.Length];
        reference.Read(0, expected);
        return (new Fat32Volume(Tree(), new Fat32VolumeOptions { FreeSpaceHeadroom = 0 }), expected);
    }
}
