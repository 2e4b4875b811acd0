using System.Text;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.Core.Tests;

public sealed class FileTreeTests
{
    [Fact]
    public void Build_IsBreadthFirst_ChildrenContiguousAndSortedByUtf8()
    {
        var b = new FileTreeBuilder();
        byte[] data = Encoding.UTF8.GetBytes("hello world");
        b.Add("z/deep/f.txt", FileTreeEntryKind.File, data.Length, 1, 2, 0x81A4, content: (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf));
        b.Add("\uE000", FileTreeEntryKind.File, 0, 0, 0, 0x81A4);
        b.Add("\U0001F600", FileTreeEntryKind.Symlink, 0, 0, 0, 0xA1FF, "target");
        b.Add("a", FileTreeEntryKind.Directory, 0, 5, 6, 0x41ED);
        using var t = b.Build();

        Assert.Equal(7, t.Count);
        var root = t.GetEntry(0);
        Assert.Equal((1, 4), (root.FirstChild, root.ChildCount));
        // UTF-8 order: "a" < "z" < U+E000 (EE 80 80) < U+1F600 (F0 9F 98 80); UTF-16 ordinal order would put U+1F600 first.
        Assert.Equal(["a", "z", "\uE000", "\U0001F600"], Enumerable.Range(1, 4).Select(i => t.GetEntry(i).Name));
        var z = t.GetEntry(2);
        Assert.Equal(FileTreeEntryKind.Directory, z.Kind);
        var deep = t.GetEntry(z.FirstChild);
        Assert.Equal(("deep", 2), (deep.Name, deep.Parent));
        var f = t.GetEntry(deep.FirstChild);
        Assert.Equal(("f.txt", data.Length, 1L), (f.Name, f.Size, f.ModifiedUnixNs));
        var back = new byte[5];
        t.ReadFile(deep.FirstChild, 6, back);
        Assert.Equal("world", Encoding.UTF8.GetString(back));
        Assert.Equal("target", t.GetEntry(4).SymlinkTarget);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.ReadFile(deep.FirstChild, 7, new byte[5]));
    }

    [Theory]
    [InlineData("a/../b")]
    [InlineData("a/./b")]
    [InlineData("a\0b")]
    public void Add_RefusesNamesATreeCannotHold(string path) =>
        Assert.Throws<InvalidDataException>(() => new FileTreeBuilder().Add(path, FileTreeEntryKind.Directory, 0, 0, 0, 0x41ED));

    [Fact]
    public void Add_RefusesAnEntryBeneathAFile()
    {
        var b = new FileTreeBuilder();
        b.Add("f", FileTreeEntryKind.File, 0, 0, 0, 0x81A4);
        Assert.Throws<InvalidDataException>(() => b.Add("f/g", FileTreeEntryKind.File, 0, 0, 0, 0x81A4));
    }

    [Fact]
    public void DirectoryScan_SeesFilesSymlinksAndFifosAsTheyAre()
    {
        using var dir = new TempDirectory("bf-tree");
        Directory.CreateDirectory(Path.Combine(dir.Path, "sub"));
        File.WriteAllText(Path.Combine(dir.Path, "sub", "x"), "12345");
        File.CreateSymbolicLink(Path.Combine(dir.Path, "link"), "sub/x");
        ExternalTool.Run("mkfifo", [Path.Combine(dir.Path, "fifo")], TimeSpan.FromSeconds(10));

        using var t = DirectoryFileTree.Scan(dir.Path);
        var names = Enumerable.Range(0, t.Count).Select(i => t.GetEntry(i)).ToDictionary(e => e.Name);
        Assert.Equal(FileTreeEntryKind.Symlink, names["link"].Kind);
        Assert.Equal("sub/x", names["link"].SymlinkTarget);
        Assert.Equal(FileTreeEntryKind.Other, names["fifo"].Kind);
        Assert.Equal(0x1000u, names["fifo"].Mode & 0xF000);
        Assert.Equal(5, names["x"].Size);
        int x = Enumerable.Range(0, t.Count).First(i => t.GetEntry(i).Name == "x");
        var buf = new byte[5];
        t.ReadFile(x, 0, buf);
        Assert.Equal("12345", Encoding.ASCII.GetString(buf));
    }

    [Fact]
    public void FatLongNames_KeepValidNames_MapTheRestDeterministically()
    {
        string longName = new string('x', 300) + ".txt";
        string[] names = ["A.txt", "a.txt", "b:c", "ok", "trail.", longName];
        var mapped = FatLongNames.Map(names, out var changed);
        Assert.Equal(["A.txt", "a~2.txt", "b_c", "ok", "trail_"], mapped[..5]);
        Assert.Equal([false, true, true, false, true, true], changed);
        Assert.Equal(FatLongNames.MaxLength, mapped[5].Length);
        Assert.EndsWith(".txt", mapped[5]);
        Assert.Equal(mapped, FatLongNames.Map(names, out _));
        Assert.Equal(mapped.Length, mapped.Select(FatLongNames.Fold).Distinct().Count());
    }
}

public sealed class ClusterRunsTests
{
    [Fact]
    public void RunsAreContiguousInOrder_AndEveryClusterMapsToItsOwner()
    {
        long[] counts = [1, 0, 3, 0, 0, 2];
        var runs = new Core.FileSystems.ClusterRuns(counts, 2);
        Assert.Equal(8, runs.EndCluster);
        Assert.Equal([2L, 3, 3, 6, 6, 6], Enumerable.Range(0, 6).Select(runs.StartOf));
        Assert.Equal([-1, 0, 2, 2, 2, 5, 5, -1], Enumerable.Range(1, 8).Select(c => runs.EntryAt(c)));
    }
}

public sealed class UnixNanosecondsTests
{
    [Fact]
    public void TimesOutsideTheRangeSaturateInsteadOfWrapping()
    {
        Assert.Equal(0, UnixNanoseconds.From(DateTime.UnixEpoch));
        Assert.Equal(1_500_000_000L, UnixNanoseconds.From(DateTime.UnixEpoch.AddSeconds(1.5)));
        Assert.Equal(long.MaxValue, UnixNanoseconds.From(new DateTime(3000, 1, 1, 0, 0, 0, DateTimeKind.Utc))); // wrapped negative before
        Assert.Equal(long.MinValue, UnixNanoseconds.From(new DateTime(1000, 1, 1, 0, 0, 0, DateTimeKind.Utc)));
        Assert.Equal(1_700_000_000_123_456_789L, UnixNanoseconds.FromSeconds(1700000000.123456789m));
        Assert.Equal(long.MaxValue, UnixNanoseconds.FromSeconds(1e20m)); // threw OverflowException before
        Assert.Equal(long.MinValue, UnixNanoseconds.FromSeconds(-1e20m));
    }
}

public sealed class ExFatHostileSizeTests
{
    [Fact]
    public void SizesThatAddUpPastTheLongRangeAreRefusedClearly()
    {
        var b = new FileTreeBuilder();
        for (int i = 0; i < 3; i++)
        {
            b.Add($"huge{i}", FileTreeEntryKind.File, long.MaxValue / 2, 0, 0, 0x81A4, content: (_, buffer) => buffer.Clear());
        }

        using var tree = b.Build();
        var e = Assert.Throws<InvalidDataException>(() => new Core.FileSystems.ExFat.ExFatVolume(tree));
        Assert.Contains("too large for exFAT", e.Message, StringComparison.Ordinal);
    }
}
