using System.Text.RegularExpressions;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Volumes;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>Volume header fields, the file-system probe and the ext4 used-block map against dumpe2fs (an independent reader).</summary>
public sealed class VolumeUsedBlocksTests
{
    [Fact]
    public void VolumeFlagAndFileSystemRoundTripAndOldHeadersReadAsDisks()
    {
        var header = new ImageHeader
        {
            ImageId = Guid.NewGuid(), DiskSize = 1 << 20, ChunkSize = 65536, EntriesPerPage = 1024, CreatedUtc = DateTime.UtcNow,
            Flags = ImageHeaderFlags.Volume, FileSystem = FileSystemKind.Xfs,
        };
        byte[] bytes = new byte[ImageHeader.Size];
        header.WriteTo(bytes);
        var parsed = ImageHeader.Parse(bytes, "h");
        Assert.True(parsed.IsVolume);
        Assert.Equal(FileSystemKind.Xfs, parsed.FileSystem);
        // A copy (as a chain merge makes) carries both.
        var copy = parsed with { ImageId = Guid.NewGuid() };
        copy.WriteTo(bytes);
        Assert.True(ImageHeader.Parse(bytes, "h").IsVolume);
        Assert.Equal(FileSystemKind.Xfs, ImageHeader.Parse(bytes, "h").FileSystem);
        var disk = parsed with { Flags = ImageHeaderFlags.None, FileSystem = FileSystemKind.Unknown };
        disk.WriteTo(bytes);
        Assert.False(ImageHeader.Parse(bytes, "h").IsVolume);
    }

    [Fact]
    public void UsedBlockMapAnswersInBytes()
    {
        var map = new UsedBlockMap(10 * 4096 + 100, 4096, 10);
        map.MarkUsed(2, 3);
        map.MarkFromBitmap(8, [0b01], 2);
        Assert.Equal(2 * 4096, map.NextUsed(0));
        Assert.Equal(2 * 4096 + 5, map.NextUsed(2 * 4096 + 5));
        Assert.Equal(5 * 4096, map.NextUnused(2 * 4096));
        Assert.Equal(8 * 4096, map.NextUsed(5 * 4096));
        Assert.Equal(9 * 4096, map.NextUnused(8 * 4096));
        Assert.Equal(10 * 4096, map.NextUsed(9 * 4096)); // the tail past the last block counts as used
        Assert.Equal(10 * 4096 + 100, map.NextUnused(10 * 4096));
        Assert.Equal(4, map.UsedBlocks);
    }

    [SkippableTheory]
    [InlineData("64M", "-b", "1024")]
    [InlineData("600M", "-b", "4096")]
    public void Ext4MapCoversEveryBlockDumpe2fsCallsUsed(string size, string option, string value)
    {
        Prerequisite.Tool("mkfs.ext4", "e2fsprogs");
        Prerequisite.Tool("dumpe2fs", "e2fsprogs");
        using var dir = new TempDirectory("bfext4");
        Directory.CreateDirectory(dir["files"]);
        File.WriteAllBytes(Path.Combine(dir["files"], "data.bin"), new byte[5 << 20]);
        ExternalTool.Check("truncate", "-s", size, dir["v.ext4"]);
        ExternalTool.Check("mkfs.ext4", "-q", "-F", option, value, "-d", dir["files"], dir["v.ext4"]);
        string dump = ExternalTool.Check("dumpe2fs", dir["v.ext4"]).StdOut;
        Assert.Contains(value == "4096" ? "BLOCK_UNINIT" : "Group 0", dump, StringComparison.Ordinal); // the 600M case exercises uninit groups

        using var f = File.OpenHandle(dir["v.ext4"]);
        long length = RandomAccess.GetLength(f);
        var map = UsedBlocks.TryBuild(FileSystemKind.Ext4, (o, b) => RandomAccess.Read(f, b, o), length, out string why);
        Assert.True(map != null, why);
        long blocks = long.Parse(Regex.Match(dump, @"Block count:\s+(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var free = new bool[blocks];
        foreach (Match m in Regex.Matches(dump, @"^\s+Free blocks: (.*)$", RegexOptions.Multiline))
        {
            foreach (string range in m.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var ends = range.Split('-').Select(x => long.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                for (long b = ends[0]; b <= ends[^1]; b++)
                {
                    free[b] = true;
                }
            }
        }

        long usedByFs = 0;
        for (long b = 0; b < blocks; b++)
        {
            if (!free[b])
            {
                usedByFs++;
                Assert.True(map.IsUsed(b), $"block {b} is used according to dumpe2fs but not in the map");
            }
        }

        // Close to exact: at most the reserved-GDT/backup areas of uninitialised groups are over-approximated.
        Assert.True(map.UsedBlocks - usedByFs < blocks / 20, $"map {map.UsedBlocks} used, dumpe2fs {usedByFs}");
    }

    [SkippableFact]
    public void ProbeNamesExt4AndXfs()
    {
        Prerequisite.Tool("mkfs.ext4", "e2fsprogs");
        Prerequisite.Tool("mkfs.xfs", "xfsprogs");
        using var dir = new TempDirectory("bfprobe");
        ExternalTool.Check("truncate", "-s", "300M", dir["x"]);
        ExternalTool.Check("truncate", "-s", "32M", dir["e"]);
        ExternalTool.Check("mkfs.ext4", "-q", "-F", dir["e"]);
        ExternalTool.Check("mkfs.xfs", "-q", "-f", dir["x"]);
        Assert.Equal(FileSystemKind.Ext4, FileSystemProbe.Probe(File.ReadAllBytes(dir["e"]).AsSpan(0, FileSystemProbe.ProbeLength)));
        Assert.Equal(FileSystemKind.Xfs, FileSystemProbe.Probe(File.ReadAllBytes(dir["x"]).AsSpan(0, FileSystemProbe.ProbeLength)));
        Assert.Equal(FileSystemKind.Unknown, FileSystemProbe.Probe(new byte[FileSystemProbe.ProbeLength]));
    }
}
