using BackupFuse.Core.Partitions;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

/// <summary>Plugin format 2: several volume images, the partition table and type; format 1 stays what it was.</summary>
public sealed class PluginFileVolumeTests
{
    private static readonly Guid A = new("0f9c3f0e-0000-0000-0000-00000000000a");
    private static readonly Guid B = new("0f9c3f0e-0000-0000-0000-00000000000b");

    [Fact]
    public void SeveralVolumesRoundTripAsVersion2()
    {
        using var dir = new TempDirectory();
        var plugin = new PluginFile(PluginFile.CurrentVersion, "/b/sda1.bfi", A)
        {
            MoreImages = [new PluginImage("/b/sda2.bfi", B)],
            PartitionTable = PartitionTableKind.Mbr,
            PartitionType = PartitionTypes.MicrosoftBasicData,
        };
        plugin.Save(dir["disk.vhdx"]);
        string text = File.ReadAllText(dir["disk.vhdx"]);
        Assert.StartsWith("backupfuse-plugin 2\n", text, StringComparison.Ordinal);
        var loaded = PluginFile.Load(dir["disk.vhdx"]);
        Assert.Equal([new PluginImage("/b/sda1.bfi", A), new PluginImage("/b/sda2.bfi", B)], loaded.Images);
        Assert.Equal(PartitionTableKind.Mbr, loaded.PartitionTable);
        Assert.Equal(PartitionTypes.MicrosoftBasicData, loaded.PartitionType);
        Assert.Equal(plugin.DiskKey, loaded.DiskKey);
        Assert.Equal(plugin with { FormatVersion = PluginFile.VolumesVersion }, loaded);
        Assert.NotEqual(plugin, loaded with { MoreImages = [new PluginImage("/b/sda3.bfi", B)] });
    }

    [Fact]
    public void TheFileSystemOfAFileLevelImageRoundTripsAsVersion2()
    {
        var plugin = new PluginFile(PluginFile.CurrentVersion, "/b/home.bfi", A) { FileSystem = Core.FileSystems.SynthesizedFileSystemKind.Fat32 };
        string text = plugin.ToText();
        Assert.StartsWith("backupfuse-plugin 2\n", text, StringComparison.Ordinal);
        Assert.Contains("\nfilesystem = fat32\n", text, StringComparison.Ordinal);
        var loaded = PluginFile.Parse(text, "p");
        Assert.Equal(Core.FileSystems.SynthesizedFileSystemKind.Fat32, loaded.FileSystem);
        Assert.NotEqual(plugin.DiskKey, (plugin with { FileSystem = Core.FileSystems.SynthesizedFileSystemKind.ExFat }).DiskKey);
    }

    [Fact]
    public void APluginWithOneImageAndNoOptionsStaysVersion1()
    {
        var plugin = new PluginFile(PluginFile.CurrentVersion, "/b/sda1.bfi", A);
        Assert.StartsWith("backupfuse-plugin 1\n", plugin.ToText(), StringComparison.Ordinal);
        Assert.Single(PluginFile.Parse(plugin.ToText(), "p").Images);
    }

    [Theory]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nimage = /b.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000002\n", "a second 'image' needs plugin format version 2")]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\npartition-table = mbr\n", "unknown key 'partition-table'")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nimage = /b.bfi\n", "image /b.bfi has no 'image-id'")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage = /b.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000002\n", "every 'image' needs its 'image-id'")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nimage = b.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000002\n", "image 'b.bfi' is not an absolute path")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\npartition-table = apm\n", "partition-table 'apm' is unknown")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nfilesystem = ntfs\n", "filesystem 'ntfs' is unknown")]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nfilesystem = fat32\n", "unknown key 'filesystem'")]
    [InlineData("backupfuse-plugin 2\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\nimage-id = 0f9c3f0e-0000-0000-0000-000000000002\n", "a second 'image-id' for one image")]
    public void DamagedVolumePluginsGetAClearError(string text, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => PluginFile.Parse(text, "x.vhdx"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("x.vhdx:", e.Message, StringComparison.Ordinal);
    }
}
