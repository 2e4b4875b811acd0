using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Tests;

/// <summary>Plugin extensions choose the format; the changes files of plugins in one directory never share a name.</summary>
public sealed class PluginFormatNamingTests
{
    [Theory]
    [InlineData("web.vhdx", PluginFormat.Vhdx)]
    [InlineData("WEB.VHDX", PluginFormat.Vhdx)]
    [InlineData("web.img", PluginFormat.Raw)]
    [InlineData("web.raw", PluginFormat.Raw)]
    [InlineData("web.vhd", PluginFormat.Vhd)]
    [InlineData("web.Vmdk", PluginFormat.Vmdk)]
    [InlineData("web.qcow2", null)]
    [InlineData("web.vhdx.txt", null)]
    [InlineData("web", null)]
    public void TheExtensionChoosesTheFormat(string name, PluginFormat? expected) =>
        Assert.Equal(expected, PluginFormats.FromPath("/vms/" + name));

    [Fact]
    public void VhdxPluginsKeepTheirNamesAndOthersGetTheirOwn()
    {
        Assert.Equal(("web.changes.vhdx", "web.base.vhdx"), ChangesLocation.NamesFor("web.vhdx"));
        Assert.Equal(("web.img-changes.vhdx", "web.img-base.vhdx"), ChangesLocation.NamesFor("web.img"));
        Assert.Equal(("web.vmdk-changes.vhdx", "web.vmdk-base.vhdx"), ChangesLocation.NamesFor("web.vmdk"));
    }

    [Fact]
    public void NoTwoPluginsOfOneDirectoryShareAStateFile()
    {
        // Names chosen to collide under simpler schemes (stem only; full name + ".changes.vhdx").
        string[] plugins =
        [
            "web.vhdx", "web.img", "web.raw", "web.vhd", "web.vmdk", "web.img.vhdx", "web.IMG", "web.img-changes.vhdx",
            "web.changes.vhdx", "web.base.vhdx", "web.img-base.vhdx", "a-changes.vhdx", "a.img", "a.vhdx", "a.vhd.vhdx",
        ];
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var plugin in plugins)
        {
            var (changes, baseView) = ChangesLocation.NamesFor(plugin);
            foreach (var file in new[] { changes, baseView })
            {
                Assert.True(seen.TryAdd(file, plugin), $"{plugin} and {(seen.TryGetValue(file, out var other) ? other : "?")} both use {file}");
            }
        }
    }
}
