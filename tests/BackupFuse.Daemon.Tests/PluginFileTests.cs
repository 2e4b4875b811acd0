using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

public sealed class PluginFileTests
{
    [Fact]
    public void SaveThenLoadRoundTrips()
    {
        using var dir = new TempDirectory();
        var plugin = new PluginFile(1, "/backups/web01.bfi", Guid.NewGuid());
        plugin.Save(dir["web01.vhdx"]);
        Assert.Equal(plugin, PluginFile.Load(dir["web01.vhdx"]));
        Assert.True(PluginFile.Sniff(File.ReadAllBytes(dir["web01.vhdx"])));
        Assert.Contains("image = /backups/web01.bfi", File.ReadAllText(dir["web01.vhdx"]), StringComparison.Ordinal);
    }

    [Fact]
    public void RealVhdxIsNotSniffedAsPlugin()
    {
        Assert.False(PluginFile.Sniff("vhdxfile"u8));
        Assert.False(PluginFile.Sniff("backupfuse"u8));
    }

    [Theory]
    [InlineData("backupfuse-plugin 9\nimage = /a.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\n", "version 9 is not supported")]
    [InlineData("backupfuse-plugin x\n", "bad version")]
    [InlineData("backupfuse-plugin 1\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\n", "'image = <absolute path>' is missing")]
    [InlineData("backupfuse-plugin 1\nimage = relative.bfi\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\n", "'image = <absolute path>' is missing")]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\n", "'image-id = <guid>' is missing")]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\nimage-id = nope\n", "is not a GUID")]
    [InlineData("backupfuse-plugin 1\nimage = /a.bfi\ncolour = blue\n", "unknown key 'colour'")]
    [InlineData("backupfuse-plugin 1\njunk line\n", "not 'key = value'")]
    public void DamagedPluginsGetAClearError(string text, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => PluginFile.Parse(text, "x.vhdx"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("x.vhdx:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CommentsBlankLinesAndCrLfAreAccepted()
    {
        var p = PluginFile.Parse("backupfuse-plugin 1\r\n# hello\r\n\r\nimage = /b/c.bfi\r\nimage-id = 0f9c3f0e-0000-0000-0000-000000000001\r\n", "p");
        Assert.Equal("/b/c.bfi", p.ImagePath);
    }
}
