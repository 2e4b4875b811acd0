using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Remote;

namespace BackupFuse.Daemon.Tests;

/// <summary>Remote addresses: one normal form, nothing climbs out of a root by spelling, no secret is ever accepted.</summary>
public sealed class RemoteLocationTests
{
    [Theory]
    [InlineData("s3://bkt/a/b.bfi", "s3://bkt/a/b.bfi")]
    [InlineData("S3://bkt/a/", "s3://bkt/a/")]
    [InlineData("HTTPS://Example.COM:443/a/b.bfi", "https://example.com/a/b.bfi")]
    [InlineData("http://example.com:80/dir/", "http://example.com/dir/")]
    [InlineData("http://example.com/a%20b.bfi", "http://example.com/a%20b.bfi")]
    public void Addresses_are_normalized(string given, string normal) => Assert.Equal(normal, RemoteLocation.Parse(given).Url);

    [Theory]
    [InlineData("s3://bkt/a/../b/x.bfi", "'.' and '..'")]
    [InlineData("s3://bkt/a/./x.bfi", "'.' and '..'")]
    [InlineData("https://h/a/../etc/x.bfi", "'.' and '..'")]
    [InlineData("https://h/a/%2e%2e/x.bfi", "'.' and '..'")]
    [InlineData("https://h/a/%2E./x.bfi", "'.' and '..'")]
    [InlineData("https://h/dir/..;/other.bfi", "'.' and '..'")] // Tomcat and Jetty serve /other.bfi for it
    [InlineData("https://h/dir/.%3bx/other.bfi", "'.' and '..'")]
    [InlineData("https://h/a%2fb/x.bfi", "encoded '/'")]
    [InlineData("https://h/a//x.bfi", "empty path segments")]
    [InlineData("https://user:pw@h/a/x.bfi", "credentials in a URL")]
    [InlineData("https://h/a/x.bfi?X-Amz-Signature=abc", "query string")]
    [InlineData("s3://AKIA:secret@bkt/x.bfi", "must not carry credentials")]
    [InlineData("s3://Bad_Bucket/x.bfi", "not a valid bucket name")]
    [InlineData("ftp://h/x.bfi", "not a remote address")]
    public void Dangerous_or_invalid_addresses_are_refused(string given, string reason)
    {
        var e = Assert.Throws<FormatException>(() => RemoteLocation.Parse(given));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("pw@", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Signature=abc", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_root_contains_what_lies_below_it_and_nothing_else()
    {
        var root = RemoteLocation.ParseRoot("s3://bkt/backups");
        Assert.Equal("s3://bkt/backups/", root.Url);
        Assert.True(root.Contains(RemoteLocation.Parse("s3://bkt/backups/x.bfi")));
        Assert.True(root.Contains(RemoteLocation.Parse("s3://bkt/backups/sub/x.bfi")));
        Assert.False(root.Contains(RemoteLocation.Parse("s3://bkt/backups-other/x.bfi")));
        Assert.False(root.Contains(RemoteLocation.Parse("s3://bkt/x.bfi")));
        Assert.False(root.Contains(RemoteLocation.Parse("https://bkt/backups/x.bfi")));

        var one = RemoteLocation.ParseRoot("https://h/img/x.bfi");
        Assert.False(one.IsDirectory);
        Assert.True(one.Contains(RemoteLocation.Parse("https://H:443/img/x.bfi")));
        Assert.False(one.Contains(RemoteLocation.Parse("https://h/img/y.bfi")));
    }

    [Fact]
    public void Image_roots_admit_remote_images_by_normalized_prefix_only()
    {
        var roots = new ImageRoots(["https://h/img/", "s3://bkt/p/"]);
        Assert.True(roots.Contains("https://H/img/a.bfi"));
        Assert.True(roots.Contains("s3://bkt/p/a.bfi"));
        Assert.False(roots.Contains("https://h/img2/a.bfi"));
        Assert.False(roots.Contains("https://h/img/../secret/a.bfi"));
        Assert.False(roots.Contains("s3://bkt/other/a.bfi"));
        Assert.Equal(["https://h/img/", "s3://bkt/p/"], roots.Locations);
        Assert.Empty(roots.Directories);
    }

    [Fact]
    public void A_plugin_may_name_a_remote_image_and_keeps_its_normal_form()
    {
        var id = Guid.NewGuid();
        var plugin = PluginFile.Parse($"backupfuse-plugin 1\nimage = HTTPS://H:443/img/x.bfi\nimage-id = {id}\n", "p.vhdx");
        Assert.Equal("https://h/img/x.bfi", plugin.ImagePath);
        Assert.Equal(plugin, PluginFile.Parse(plugin.ToText(), "p.vhdx"));

        var e = Assert.Throws<InvalidDataException>(() => PluginFile.Parse($"backupfuse-plugin 1\nimage = https://u:pw@h/x.bfi\nimage-id = {id}\n", "p.vhdx"));
        Assert.Contains("credentials in a URL", e.Message, StringComparison.Ordinal);
    }
}
