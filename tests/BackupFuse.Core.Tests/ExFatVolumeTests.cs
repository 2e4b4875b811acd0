using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using BackupFuse.Core.FileSystems.ExFat;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Core.Tests;

// Oracles: fsck.exfat (exfatprogs) for the on-disk structures, exfat-fuse (a driver nobody here wrote) for what a
// reader sees; the C#-side compare walks the tree and the Mappings, so renamed entries are checked by their stored
// names and omitted ones by their absence.
public sealed class ExFatVolumeTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [SkippableFact]
    public void ScannedDirectory_IsCleanForFsck_AndExfatFuseShowsTheSameTree()
    {
        RequireOracles();
        using var dir = new TempDirectory("bf-exfat-src");
        var src = Path.Combine(dir.Path, "src");
        MakeSourceTree(src);

        using var tree = DirectoryFileTree.Scan(src);
        using var volume = new ExFatVolume(tree, new ExFatOptions { VolumeLabel = "BACKUP", SerialSeed = Guid.Parse("0b5c0d3e-1f7a-4c1b-9a55-3c3f1e0b8a11") });
        Assert.Equal(32768, volume.ClusterSize); // default free space 1 GiB: the 32 KiB class

        // Exactly the entries a driver cannot hold, or that need other names, are reported.
        Assert.Equal(volume.Mappings.OrderBy(m => m.Entry), volume.Mappings); // tree order
        var reported = volume.Mappings.Select(m => (m.Path, m.StoredName)).OrderBy(m => m.Path, StringComparer.Ordinal).ToArray();
        Assert.Equal([("a.txt", "a~2.txt"), ("b:c.txt", "b_c.txt"), ("fifo", null), ("link", null), ("trail.", "trail_")], reported);
        Assert.All(volume.Mappings, m => Assert.Equal(m.Path, PathOf(tree, m.Entry)));
        Assert.Contains(volume.Mappings, m => m.StoredName == "a~2.txt" && m.Reason == "case collision");

        CheckWithOracles(volume, tree, dir, mnt =>
        {
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(mnt, "empty-dir")));

            // The unmapped parts are byte-for-byte the source.
            foreach (var sub in new[] { "many", "d01", "unicode" })
            {
                var diff = ExternalTool.Run("diff", ["-r", Path.Combine(src, sub), Path.Combine(mnt, sub)]);
                Assert.True(diff.ExitCode == 0, $"diff -r {sub}: {diff.Output}");
            }
        }, label: "BACKUP");
    }

    [SkippableFact]
    public void NamesOnlyATarCouldHold_AreMapped_AndTheDriverSeesTheStoredNames()
    {
        RequireOracles();
        using var dir = new TempDirectory("bf-exfat-names");
        string longName = new string('n', 300) + ".txt"; // over 255 bytes: no Linux directory holds it, a tar can
        var b = new FileTreeBuilder();
        AddBytes(b, longName, "long"u8.ToArray(), 1_700_000_000_123_456_789);
        AddBytes(b, "dir/" + longName, "long in dir"u8.ToArray(), 1_600_000_000_010_000_000);
        AddBytes(b, "dir/x?y", "q"u8.ToArray(), 1_500_000_000_000_000_000);
        AddBytes(b, "old", "before 1980"u8.ToArray(), -1_000_000_000_000_000_000);
        b.Add("ro", FileTreeEntryKind.File, 0, 1_650_000_000_000_000_000, 0, 0x8124); // r--r--r--
        using var tree = b.Build();
        using var volume = new ExFatVolume(tree, new ExFatOptions { FreeBytes = 8 * MiB });
        Assert.Equal(4096, volume.ClusterSize);
        var mapped = volume.Mappings.Single(m => m.Path == longName);
        Assert.Equal(255, mapped.StoredName!.Length);
        Assert.EndsWith(".txt", mapped.StoredName);
        Assert.Equal("name longer than 255 UTF-16 units", mapped.Reason);
        Assert.Equal("x_y", volume.Mappings.Single(m => m.Path == "dir/x?y").StoredName);

        CheckWithOracles(volume, tree, dir, mnt =>
        {
            Assert.Equal(new DateTime(1980, 1, 1, 0, 0, 0, DateTimeKind.Utc), File.GetLastWriteTimeUtc(Path.Combine(mnt, "old")));
        });

        // exfat-fuse ignores the attribute byte (its modes come from umask), so the attributes are read raw.
        var reader = new MiniExFatReader(volume);
        var attributes = reader.List(reader.RootCluster, reader.ClusterSize).ToDictionary(e => e.Name, e => e.Attributes);
        Assert.Equal(0x21, attributes["ro"]); // Archive | ReadOnly: mode r--r--r--
        Assert.Equal(0x20, attributes["old"]);
        Assert.Equal(0x10, attributes["dir"]);
    }

    [SkippableFact]
    public void FreeHeadroom_IsFreeForTheGuest_AndZeroForGetExtent()
    {
        RequireOracles();
        using var dir = new TempDirectory("bf-exfat-free");
        var b = new FileTreeBuilder();
        var data = RandomBytes(3 * MiB, 7);
        AddBytes(b, "data.bin", data, 1_700_000_000_000_000_000);
        using var tree = b.Build();
        long free = 64 * MiB;
        using var volume = new ExFatVolume(tree, new ExFatOptions { FreeBytes = free });

        // Everything up to the free tail is Data (metadata, the file), the tail is Zero and reads as zeros.
        var first = volume.GetExtent(0, volume.Length);
        Assert.Equal((0L, ExtentKind.Data), (first.Offset, first.Kind));
        Assert.Equal(volume.FreeSpaceOffset, first.End);
        var tail = volume.GetExtent(first.End, volume.Length);
        Assert.Equal((ExtentKind.Zero, volume.Length), (tail.Kind, tail.End));
        Assert.InRange(tail.Length, free, free + volume.ClusterSize);
        var probe = new byte[MiB];
        volume.Read(tail.Offset + (tail.Length / 2), probe);
        Assert.True(probe.All(x => x == 0));

        CheckWithOracles(volume, tree, dir, mnt =>
        {
            var df = ExternalTool.Check("stat", "-f", "-c", "%a %S", mnt).StdOut.Split(' ');
            long available = long.Parse(df[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(df[1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(available, free, free + volume.ClusterSize);
        });
    }

    [Fact]
    public void SameTreeAndOptions_GiveTheSameBytes_HoweverTheReadsAreCut()
    {
        // Two trees built alike (not two scans of one directory: reading a directory moves its atime under
        // relatime, and atime is part of the volume, so two scans may rightly differ).
        var options = new ExFatOptions { VolumeLabel = "DET", SerialSeed = Guid.Parse("6d0c4a7e-8a5f-4a51-8d3b-0d1f2e3c4b5a"), FreeBytes = 4 * MiB, ClusterSize = 4096 };
        using var tree1 = SyntheticTree();
        using var tree2 = SyntheticTree();
        using var v1 = new ExFatVolume(tree1, options);
        using var v2 = new ExFatVolume(tree2, options);
        Assert.Equal(v1.Length, v2.Length);
        Assert.Equal(BlockSourceHash.Sha256(v1, (int)MiB), BlockSourceHash.Sha256(v2, 12_345)); // chunks crossing every region and cluster boundary
        using var v3 = new ExFatVolume(tree1, options with { SerialSeed = Guid.Empty });
        Assert.NotEqual(v1.VolumeSerial, v3.VolumeSerial);
    }

    [Fact]
    public void ConcurrentReads_GiveTheSameBytesAsOneReader()
    {
        // Many directories (more than the listing cache holds) read from several threads at random offsets.
        using var tree = SyntheticTree();
        using var volume = new ExFatVolume(tree, new ExFatOptions { FreeBytes = MiB, ClusterSize = 4096 });
        var expected = new byte[volume.Length];
        volume.Read(0, expected);
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
        {
            var rng = new Random(worker);
            var buffer = new byte[64 * 1024];
            for (int i = 0; i < 400; i++)
            {
                long offset = rng.NextInt64(volume.Length);
                int n = (int)Math.Min(rng.Next(1, buffer.Length), volume.Length - offset);
                volume.Read(offset, buffer.AsSpan(0, n));
                Assert.True(expected.AsSpan((int)offset, n).SequenceEqual(buffer.AsSpan(0, n)), $"read at {offset}+{n} differs");
            }
        });
    }

    [Fact]
    public void MillionEntries_ConstructLazily_AndServeTheirDirectories()
    {
        var b = new FileTreeBuilder();
        const int Top = 40, Sub = 50, Files = 500;
        for (int t = 0; t < Top; t++)
        {
            for (int s = 0; s < Sub; s++)
            {
                string d = $"t{t:D2}/d{s:D2}/";
                for (int f = 0; f < Files; f++)
                {
                    b.Add(d + "file" + f.ToString("D4", System.Globalization.CultureInfo.InvariantCulture), FileTreeEntryKind.File, 0, 1_700_000_000_000_000_000, 0, 0x81A4);
                }
            }
        }

        using var tree = b.Build();
        Assert.True(tree.Count > 1_000_000);
        GC.Collect();
        long before = GC.GetTotalMemory(true);
        var sw = Stopwatch.StartNew();
        using var volume = new ExFatVolume(tree);
        var constructed = sw.Elapsed;
        long retained = GC.GetTotalMemory(true) - before;

        sw.Restart();
        var reader = new MiniExFatReader(volume);
        var root = reader.List(reader.RootCluster, reader.ClusterSize);
        Assert.Equal(Enumerable.Range(0, Top).Select(t => $"t{t:D2}"), root.Select(e => e.Name));
        var t39 = root[^1];
        var d49 = reader.List(t39.FirstCluster, t39.Length)[^1];
        Assert.Equal("d49", d49.Name);
        var files = reader.List(d49.FirstCluster, d49.Length);
        var elapsedRead = sw.Elapsed;
        Assert.Equal(Enumerable.Range(0, Files).Select(f => $"file{f:D4}"), files.Select(e => e.Name));
        Assert.All(files, f => Assert.Equal((0L, 0L), (f.Length, f.FirstCluster)));
        output.WriteLine($"{tree.Count} entries: volume constructed in {constructed.TotalMilliseconds:F0} ms, retains {retained / MiB} MiB managed; root + t39 + t39/d49 read in {elapsedRead.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public void EntrySets_CarryChecksumsAndHashes_TheSpecDefines()
    {
        // One file whose entry set is written by the volume, re-verified by an independent reading of the spec.
        var b = new FileTreeBuilder();
        AddBytes(b, "Straße.txt", "x"u8.ToArray(), 1_700_000_000_987_654_321);
        using var tree = b.Build();
        using var volume = new ExFatVolume(tree, new ExFatOptions { FreeBytes = 0 });
        var reader = new MiniExFatReader(volume);
        var e = Assert.Single(reader.List(reader.RootCluster, reader.ClusterSize));
        Assert.Equal("Straße.txt", e.Name);
        Assert.Equal(1L, e.Length);
        var source = DateTime.UnixEpoch.AddTicks(1_700_000_000_000_000_000 / 100).AddMilliseconds(987);
        Assert.InRange((source - e.Modified).TotalMilliseconds, 0, 9.999);
        Assert.True(volume.Length >= MiB, "an exFAT volume is at least 1 MiB");
    }

    [Theory]
    [InlineData("TWELVE-CHARS", null)]
    [InlineData("A:B", null)]
    [InlineData("", 1000)]
    [InlineData("", 256)]
    [InlineData("", 64 << 20)]
    public void InvalidOptions_AreRefusedWithAClearMessage(string label, int? clusterSize)
    {
        using var tree = new FileTreeBuilder().Build();
        var e = Assert.Throws<ArgumentException>(() => new ExFatVolume(tree, new ExFatOptions { VolumeLabel = label, ClusterSize = clusterSize }));
        Assert.Contains(label.Length > 0 ? "volume label" : "cluster size", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UpcaseTable_IsCompressed_AndDefinesTheCaseMappingNamesAreFoldedWith()
    {
        using var tree = new FileTreeBuilder().Build();
        using var volume = new ExFatVolume(tree, new ExFatOptions { FreeBytes = 0 });
        var reader = new MiniExFatReader(volume);
        var (checksum, table) = reader.UpcaseTable();

        // fsck.exfat checksums the table through an unsigned short size: a table of 64 KiB or more reads as corrupt.
        Assert.InRange(table.Length, 2, 65534);
        uint sum = 0;
        foreach (byte x in table)
        {
            sum = ((sum & 1) << 31) + (sum >> 1) + x;
        }

        Assert.Equal(checksum, sum);
        var map = new char[65536];
        int c = 0;
        for (int i = 0; i < table.Length; i += 2)
        {
            int v = BinaryPrimitives.ReadUInt16LittleEndian(table.AsSpan(i));
            if (v == 0xFFFF)
            {
                int run = BinaryPrimitives.ReadUInt16LittleEndian(table.AsSpan(i + 2));
                for (int k = 0; k < run; k++, c++)
                {
                    map[c] = (char)c;
                }

                i += 2;
            }
            else
            {
                map[c++] = (char)v;
            }
        }

        Assert.Equal(65536, c);
        Assert.All(Enumerable.Range(0, 65536), u => Assert.Equal(char.ToUpperInvariant((char)u), map[u]));
    }

    private static void CheckWithOracles(ExFatVolume volume, IFileTree tree, TempDirectory dir, Action<string> more, string label = "")
    {
        string raw = Path.Combine(dir.Path, "volume.raw");
        WriteRaw(volume, raw);
        var fsck = ExternalTool.Run("fsck.exfat", ["-n", raw]);
        Assert.True(fsck.ExitCode == 0, $"fsck.exfat -n exited {fsck.ExitCode}: {fsck.Output}");
        Assert.Contains("clean", fsck.Output, StringComparison.Ordinal);
        if (label.Length > 0)
        {
            Assert.Contains("label: " + label, ExternalTool.Check("tune.exfat", "-l", raw).Output, StringComparison.Ordinal);
        }

        // exfat-fuse run as root mounts fuseblk, which needs a block device: a read-only loop device over the raw file.
        string mnt = Path.Combine(dir.Path, "mnt");
        Directory.CreateDirectory(mnt);
        string loop = ExternalTool.Check("losetup", "-f", "--show", "-r", raw).StdOut.Trim();
        try
        {
            string log = Path.Combine(dir.Path, "mount.log");
            var mount = ExternalTool.Run("sh", ["-c", "mount.exfat-fuse -o ro \"$0\" \"$1\" >\"$2\" 2>&1", loop, mnt, log]);
            Assert.True(mount.ExitCode == 0, $"mount.exfat-fuse exited {mount.ExitCode}: {File.ReadAllText(log)}");
            try
            {
                CompareTree(volume, tree, mnt);
                more(mnt);
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

    private static void RequireOracles()
    {
        Prerequisite.Tool("fsck.exfat", "exfatprogs");
        Prerequisite.Tool("mount.exfat-fuse", "exfat-fuse");
        Prerequisite.Tool("losetup", "mount");
        Prerequisite.SkipIf(File.Exists("/dev/loop-control") ? null : "no loop devices (/dev/loop-control): exfat-fuse as root needs a block device");
    }

    /// <summary>Every stored entry is on the mount under its stored name with its size, bytes and mtime; nothing else is.</summary>
    private static void CompareTree(ExFatVolume volume, IFileTree tree, string mnt)
    {
        var stored = volume.Mappings.ToDictionary(m => m.Entry, m => m.StoredName);
        var hostPath = new string?[tree.Count];
        hostPath[0] = mnt;
        for (int i = 0; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            if (e.Kind != FileTreeEntryKind.Directory || hostPath[i] == null)
            {
                continue;
            }

            var expected = new List<string>();
            for (int c = e.FirstChild; c < e.FirstChild + e.ChildCount; c++)
            {
                string? name = stored.TryGetValue(c, out var s) ? s : tree.GetEntry(c).Name;
                if (name != null)
                {
                    hostPath[c] = Path.Combine(hostPath[i]!, name);
                    expected.Add(name);
                }
            }

            var actual = Directory.GetFileSystemEntries(hostPath[i]!).Select(Path.GetFileName).Order(StringComparer.Ordinal);
            Assert.Equal(expected.Order(StringComparer.Ordinal), actual);
            for (int c = e.FirstChild; c < e.FirstChild + e.ChildCount; c++)
            {
                if (hostPath[c] is not { } path)
                {
                    continue;
                }

                var child = tree.GetEntry(c);
                var mtime = DateTime.UnixEpoch.AddTicks(child.ModifiedUnixNs / 100);
                if (mtime.Year >= 1980)
                {
                    // exfat-fuse keeps whole seconds (it adds the 10 ms field's seconds, drops the rest); the
                    // 10 ms precision itself is checked on the raw entries (EntrySets_CarryChecksumsAndHashes...).
                    var seen = File.GetLastWriteTimeUtc(path);
                    Assert.True(seen == mtime.AddTicks(-(mtime.Ticks % TimeSpan.TicksPerSecond)), $"{path}: mtime {seen:O}, source {mtime:O}");
                }

                if (child.Kind == FileTreeEntryKind.File)
                {
                    Assert.Equal(child.Size, new FileInfo(path).Length);
                    var bytes = new byte[child.Size];
                    tree.ReadFile(c, 0, bytes);
                    Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(path)), $"{path}: content differs");
                }
                else
                {
                    Assert.True(Directory.Exists(path), $"{path}: not a directory");
                }
            }
        }
    }

    private static void MakeSourceTree(string src)
    {
        Directory.CreateDirectory(src);
        var t0 = new DateTime(2024, 5, 6, 7, 8, 9, 123, DateTimeKind.Utc);
        void Write(string rel, byte[] data)
        {
            string p = Path.Combine(src, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.WriteAllBytes(p, data);
            File.SetLastWriteTimeUtc(p, t0.AddSeconds(rel.Length).AddMilliseconds(rel.Length * 7));
        }

        Write("empty", []);
        Directory.CreateDirectory(Path.Combine(src, "empty-dir"));
        Write("one", [42]);
        Write("cluster-multiple.bin", RandomBytes(3 * 32768, 1));
        Write("big.bin", RandomBytes((5 * MiB) + 17, 2));
        string deep = string.Join('/', Enumerable.Range(1, 20).Select(i => $"d{i:D2}"));
        Write(deep + "/leaf.txt", "deep"u8.ToArray());
        for (int i = 0; i < 1200; i++)
        {
            Write($"many/entry-with-a-longish-name-{i:D4}.txt", Encoding.ASCII.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Write("unicode/café.txt", "accent"u8.ToArray());
        Write("unicode/日本語のファイル名.txt", "cjk"u8.ToArray());
        Write("unicode/emoji 😀🎉.txt", "emoji"u8.ToArray());
        Write("A.txt", "upper"u8.ToArray());
        Write("a.txt", "lower"u8.ToArray());
        Write("b:c.txt", "colon"u8.ToArray());
        Write("trail.", "dot"u8.ToArray());
        File.CreateSymbolicLink(Path.Combine(src, "link"), "one");
        ExternalTool.Check("mkfifo", Path.Combine(src, "fifo"));
        foreach (var d in Directory.GetDirectories(src, "*", SearchOption.AllDirectories))
        {
            Directory.SetLastWriteTimeUtc(d, t0);
        }
    }

    /// <summary>A tree with the shapes of <see cref="MakeSourceTree"/>, built in memory from fixed inputs.</summary>
    private static IFileTree SyntheticTree()
    {
        var b = new FileTreeBuilder();
        long t = 1_714_979_289_123_000_000;
        AddBytes(b, "empty", [], t);
        AddBytes(b, "one", [42], t + 1);
        AddBytes(b, "cluster-multiple.bin", RandomBytes(3 * 32768, 1), t + 2);
        AddBytes(b, "big.bin", RandomBytes((5 * MiB) + 17, 2), t + 3);
        AddBytes(b, string.Join('/', Enumerable.Range(1, 20).Select(i => $"d{i:D2}")) + "/leaf.txt", "deep"u8.ToArray(), t + 4);
        for (int i = 0; i < 1200; i++)
        {
            AddBytes(b, $"many/entry-with-a-longish-name-{i:D4}.txt", Encoding.ASCII.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), t + i);
        }

        AddBytes(b, "unicode/日本語のファイル名.txt", "cjk"u8.ToArray(), t);
        AddBytes(b, "unicode/emoji 😀🎉.txt", "emoji"u8.ToArray(), t);
        AddBytes(b, "A.txt", "upper"u8.ToArray(), t);
        AddBytes(b, "a.txt", "lower"u8.ToArray(), t);
        AddBytes(b, "b:c.txt", "colon"u8.ToArray(), t);
        b.Add("link", FileTreeEntryKind.Symlink, 0, t, t, 0xA1FF, "one");
        b.Add("fifo", FileTreeEntryKind.Other, 0, t, t, 0x11A4);
        return b.Build();
    }

    private static void AddBytes(FileTreeBuilder b, string path, byte[] data, long mtime) =>
        b.Add(path, FileTreeEntryKind.File, data.Length, mtime, mtime, 0x81A4, content: (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf));

    private static byte[] RandomBytes(long n, int seed)
    {
        var data = new byte[n];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static string PathOf(IFileTree tree, int i)
    {
        var parts = new List<string>();
        for (; i != 0; i = tree.GetEntry(i).Parent)
        {
            parts.Insert(0, tree.GetEntry(i).Name);
        }

        return string.Join('/', parts);
    }

    /// <summary>Writes the volume to a sparse raw file: only its Data extents.</summary>
    private static void WriteRaw(ExFatVolume volume, string path)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        f.SetLength(volume.Length);
        var buf = new byte[MiB];
        for (long at = 0; at < volume.Length;)
        {
            var e = volume.GetExtent(at, volume.Length - at);
            if (e.Kind == ExtentKind.Data)
            {
                for (long p = e.Offset; p < e.End; p += buf.Length)
                {
                    int n = (int)Math.Min(buf.Length, e.End - p);
                    volume.Read(p, buf.AsSpan(0, n));
                    f.Position = p;
                    f.Write(buf, 0, n);
                }
            }

            at = e.End;
        }
    }


    /// <summary>Just enough of an exFAT reader (written from the spec) to list directories of a volume.</summary>
    private sealed class MiniExFatReader
    {
        private readonly ExFatVolume _volume;
        private readonly long _heap;

        public MiniExFatReader(ExFatVolume volume)
        {
            _volume = volume;
            var boot = new byte[512];
            volume.Read(0, boot);
            Assert.Equal("EXFAT   ", Encoding.ASCII.GetString(boot, 3, 8));
            _heap = BinaryPrimitives.ReadUInt32LittleEndian(boot.AsSpan(88)) * 512L;
            RootCluster = BinaryPrimitives.ReadUInt32LittleEndian(boot.AsSpan(96));
            ClusterSize = 512 << boot[109];
        }

        public long RootCluster { get; }

        /// <summary>The up-case table entry's checksum and the table's bytes.</summary>
        public (uint Checksum, byte[] Table) UpcaseTable()
        {
            var root = new byte[ClusterSize];
            _volume.Read(_heap + ((RootCluster - 2) * ClusterSize), root);
            for (int at = 0; at < root.Length; at += 32)
            {
                if (root[at] == 0x82)
                {
                    var table = new byte[BinaryPrimitives.ReadUInt64LittleEndian(root.AsSpan(at + 24))];
                    _volume.Read(_heap + ((BinaryPrimitives.ReadUInt32LittleEndian(root.AsSpan(at + 20)) - 2) * ClusterSize), table);
                    return (BinaryPrimitives.ReadUInt32LittleEndian(root.AsSpan(at + 4)), table);
                }
            }

            throw new InvalidDataException("no up-case table entry in the root");
        }

        public int ClusterSize { get; }

        /// <summary>The file/directory entry sets of a contiguous directory, verified (SetChecksum, NameHash computed here).</summary>
        public List<(string Name, long FirstCluster, long Length, DateTime Modified, int Attributes)> List(long cluster, long length)
        {
            var bytes = new byte[length];
            _volume.Read(_heap + ((cluster - 2) * ClusterSize), bytes);
            var result = new List<(string, long, long, DateTime, int)>();
            for (int at = 0; at < bytes.Length && bytes[at] != 0; at += 32)
            {
                if (bytes[at] != 0x85)
                {
                    continue;
                }

                int secondaries = bytes[at + 1];
                var set = bytes.AsSpan(at, (secondaries + 1) * 32);
                ushort sum = 0;
                for (int i = 0; i < set.Length; i++)
                {
                    sum = i is 2 or 3 ? sum : (ushort)(((sum & 1) << 15) + (sum >> 1) + set[i]);
                }

                Assert.Equal(BinaryPrimitives.ReadUInt16LittleEndian(set[2..]), sum);
                var stream = set[32..];
                Assert.Equal(0xC0, stream[0]);
                int nameLength = stream[3];
                var name = new StringBuilder();
                for (int i = 0; i < nameLength; i++)
                {
                    name.Append((char)BinaryPrimitives.ReadUInt16LittleEndian(set[(64 + ((i / 15) * 32) + 2 + ((i % 15) * 2))..]));
                }

                ushort hash = 0;
                foreach (char c in name.ToString().ToUpperInvariant())
                {
                    hash = (ushort)(((hash & 1) << 15) + (hash >> 1) + (c & 0xFF));
                    hash = (ushort)(((hash & 1) << 15) + (hash >> 1) + (c >> 8));
                }

                Assert.Equal(BinaryPrimitives.ReadUInt16LittleEndian(stream[4..]), hash);
                uint ts = BinaryPrimitives.ReadUInt32LittleEndian(set[12..]);
                Assert.Equal(0x80, set[23]); // LastModified UTC offset: valid, +0
                var modified = new DateTime((int)(ts >> 25) + 1980, (int)(ts >> 21) & 15, (int)(ts >> 16) & 31, (int)(ts >> 11) & 31, (int)(ts >> 5) & 63, (int)(ts & 31) * 2, DateTimeKind.Utc)
                    .AddMilliseconds(set[21] * 10);
                result.Add((name.ToString(), BinaryPrimitives.ReadUInt32LittleEndian(stream[20..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(stream[24..]), modified, BinaryPrimitives.ReadUInt16LittleEndian(set[4..])));
                at += secondaries * 32;
            }

            return result;
        }
    }
}

public sealed class ExFatVolumeConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var b = new FileTreeBuilder();
        var rng = new Random(5);
        for (int i = 0; i < 300; i++)
        {
            var data = new byte[rng.Next(0, 20_000)];
            rng.NextBytes(data);
            b.Add($"d{i % 7}/file-{i:D3}.bin", FileTreeEntryKind.File, data.Length, 1_700_000_000_000_000_000 + i, 0, 0x81A4, content: (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf));
        }

        var volume = new ExFatVolume(b.Build(), new ExFatOptions { FreeBytes = 1 << 20, ClusterSize = 4096 }, ownsTree: true);

        // The expected bytes read cluster by cluster: the conformance reads cut them every other way.
        var expected = new byte[volume.Length];
        for (long at = 0; at < expected.Length; at += 4096)
        {
            volume.Read(at, expected.AsSpan((int)at, 4096));
        }

        return (volume, expected);
    }
}
