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

    [SkippableTheory]
    [InlineData("ext4", 64)]
    [InlineData("xfs", 300)]
    [InlineData("ntfs", 64)]
    public void DamagedFileSystemStructuresNeverThrowTheyFallBack(string fs, int mib)
    {
        string mkfs = fs == "ntfs" ? "mkntfs" : $"mkfs.{fs}";
        Prerequisite.Tool(mkfs, fs == "ntfs" ? "ntfs-3g" : fs == "xfs" ? "xfsprogs" : "e2fsprogs");
        using var dir = new TempDirectory("bffuzz");
        string image = dir["v.img"];
        ExternalTool.Check("truncate", "-s", $"{mib}M", image);
        ExternalTool.Check(mkfs, fs switch { "ntfs" => ["-q", "-F", "-Q", image], "xfs" => ["-q", "-f", image], _ => ["-q", "-F", image] });
        using var f = File.OpenHandle(image);
        long length = RandomAccess.GetLength(f);
        var kind = FileSystemProbe.Probe((o, b) => RandomAccess.Read(f, b, o), length);
        Assert.True(UsedBlocks.TryBuild(kind, (o, b) => RandomAccess.Read(f, b, o), length, out string why) != null, why);

        byte[] original = new byte[256 * 1024];
        RandomAccess.Read(f, original, 0);
        var rng = new Random(fs.Length * 31);
        int fallbacks = 0;
        for (int i = 0; i < 150; i++)
        {
            byte[] head = (byte[])original.Clone();
            for (int k = rng.Next(1, 9); k > 0; k--)
            {
                // Mostly the superblock / boot sector, group descriptors, AGF and first MFT records.
                int at = rng.Next(4) == 0 ? rng.Next(head.Length) : rng.Next(8192);
                head[at] = (byte)rng.Next(256);
            }

            void Read(long offset, Span<byte> buffer)
            {
                RandomAccess.Read(f, buffer, offset);
                long end = Math.Min(offset + buffer.Length, head.Length);
                for (long p = offset; p < end; p++)
                {
                    buffer[(int)(p - offset)] = head[p];
                }
            }

            if (UsedBlocks.TryBuild(kind, Read, length, out _) == null)
            {
                fallbacks++;
            }
        }

        Assert.True(fallbacks > 0, "some damage is noticed");
    }

    [SkippableFact]
    public void AnNtfsAttributeValueOffsetOutsideItsRecordFallsBackInsteadOfThrowing()
    {
        Prerequisite.Tool("mkntfs", "ntfs-3g");
        using var dir = new TempDirectory("bfntfs");
        string image = dir["v.img"];
        ExternalTool.Check("truncate", "-s", "64M", image);
        ExternalTool.Check("mkntfs", "-q", "-F", "-Q", image);
        byte[] volume = File.ReadAllBytes(image);
        int clusterSize = BitConverter.ToUInt16(volume, 11) * volume[13];
        int recordSize = (sbyte)volume[64] < 0 ? 1 << -(sbyte)volume[64] : (sbyte)volume[64] * clusterSize;
        int record = (int)(BitConverter.ToInt64(volume, 48) * clusterSize) + (3 * recordSize);
        int at = record + BitConverter.ToUInt16(volume, record + 20);
        while (BitConverter.ToUInt32(volume, at) != 0x70)
        {
            at += (int)BitConverter.ToUInt32(volume, at + 4);
        }

        volume[at + 20] = 0xF0; // $VOLUME_INFORMATION's value offset: far outside the 1 KiB record
        volume[at + 21] = 0xFF;
        var map = UsedBlocks.TryBuild(FileSystemKind.Ntfs, (o, b) => volume.AsSpan((int)o, b.Length).CopyTo(b), volume.Length, out string why);
        Assert.Null(map);
        Assert.Contains("inconsistent", why, StringComparison.Ordinal);
    }
}
