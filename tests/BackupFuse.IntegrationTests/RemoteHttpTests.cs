using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 12 with nginx on loopback (HTTP and HTTPS with a self-signed certificate the test makes): mounts with
/// --images http(s)://... serving plugins that name HTTP images, checked by qemu-img compare; the JSON listing finds
/// parents by identity; an untrusted certificate and an HTTP backup destination are refused in one line.
/// </summary>
[Collection("mounts")]
public sealed class RemoteHttpTests : IClassFixture<NginxFixture>
{
    private readonly NginxFixture _web;

    public RemoteHttpTests(NginxFixture web)
    {
        _web = web;
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mount_with_web_images_serves_plugins_naming_web_images_for_both_points(bool https)
    {
        Prerequisite.SkipIf(_web.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        string name = https ? "s" : "p";
        var (p0, p1) = Points(name);
        string root = _web.Url(https, $"{name}/");
        string vms = Directory.CreateDirectory(_web.Dir[$"{name}-vms"]).FullName;
        Ok("plugin", "create", root + "full.bfi", Path.Combine(vms, "full.vhdx"));
        Ok("plugin", "create", root + "inc.bfi", Path.Combine(vms, "inc.vhdx"), "--images", root);
        Assert.Contains($"image = {root}inc.bfi\n", File.ReadAllText(Path.Combine(vms, "inc.vhdx")), StringComparison.Ordinal);
        var info = Ok("info", Path.Combine(vms, "inc.vhdx"), "--images", root);
        Assert.Contains("- " + root + "full.bfi", info.StdOut, StringComparison.Ordinal);

        using var daemon = DaemonProcess.StartWithEnv(vms, _web.Env, vms, "--images", root, "--read-only");
        Compare(Path.Combine(vms, "full.vhdx"), p0);
        Compare(Path.Combine(vms, "inc.vhdx"), p1);
        daemon.Stop();
    }

    [SkippableFact]
    public void Explicit_image_URLs_are_roots_of_their_own_without_a_listing()
    {
        Prerequisite.SkipIf(_web.Missing);
        Prerequisite.Tool("qemu-img", "qemu-utils");
        var (_, p1) = Points("e");
        string full = _web.Url(https: false, "e/full.bfi");
        string inc = _web.Url(https: false, "e/inc.bfi");
        string vms = Directory.CreateDirectory(_web.Dir["e-vms"]).FullName;
        Ok("plugin", "create", inc, Path.Combine(vms, "inc.vhdx"));

        // Only the two image URLs are roots: the parent is found by identity among them.
        using (var daemon = DaemonProcess.StartWithEnv(vms, _web.Env, vms, "--images", inc, "--images", full, "--read-only"))
        {
            Compare(Path.Combine(vms, "inc.vhdx"), p1);
            daemon.Stop();
        }

        // Without the full backup's URL the chain is incomplete: the plugin is not served.
        using (var daemon = DaemonProcess.StartWithEnv(vms, _web.Env, vms, "--images", inc, "--read-only"))
        {
            Assert.ThrowsAny<IOException>(() => File.ReadAllBytes(Path.Combine(vms, "inc.vhdx")));
            daemon.Stop();
            Assert.Contains("was not found in the search directories: " + inc, daemon.Log, StringComparison.Ordinal);
        }
    }

    [SkippableFact]
    public void An_untrusted_certificate_is_one_clear_line()
    {
        Prerequisite.SkipIf(_web.Missing);
        Points("u");
        string url = _web.Url(https: true, "u/full.bfi");
        var r = Cli.Run("info", url);
        Assert.Equal(1, r.ExitCode);
        var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line: {r.StdErr}");
        Assert.StartsWith($"error: {url}", lines[0], StringComparison.Ordinal);
        Assert.Contains("TLS", lines[0], StringComparison.Ordinal);
    }

    [SkippableFact]
    public void Web_repositories_are_read_only_and_refuse_credentials_in_URLs()
    {
        Prerequisite.SkipIf(_web.Missing);
        var (p0, _) = Points("r");
        var r = Cli.RunWithEnv(_web.Env, "backup", p0, _web.Url(https: false, "r/new.bfi"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("read-only", r.StdErr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_web.Root, "r", "new.bfi")));

        var withUser = Cli.RunWithEnv(_web.Env, "info", $"http://admin:pw-marker-77@127.0.0.1:{_web.HttpPort}/r/full.bfi");
        Assert.Equal(1, withUser.ExitCode);
        Assert.DoesNotContain("pw-marker-77", withUser.Output, StringComparison.Ordinal);
        Assert.Contains("credentials in a URL are not accepted", withUser.StdErr, StringComparison.Ordinal);
    }

    private static void Compare(string plugin, string raw)
    {
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, raw], TimeSpan.FromMinutes(3));
        Assert.True(compare.ExitCode == 0, $"qemu-img compare {plugin} {raw}: {compare.Output}");
    }

    private ToolResult Ok(params string[] args)
    {
        var r = Cli.RunWithEnv(_web.Env, args);
        Assert.True(r.ExitCode == 0, $"backupfuse {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        return r;
    }

    /// <summary>A full and an incremental backup of a small disk in the served directory <paramref name="name"/>/.</summary>
    private (string P0, string P1) Points(string name)
    {
        string dir = Directory.CreateDirectory(Path.Combine(_web.Root, name)).FullName;
        string p0 = _web.Dir[$"{name}-p0.raw"];
        string p1 = _web.Dir[$"{name}-p1.raw"];
        TestDisks.CreateMixed(p0, 24L << 20, seed: name[0]);
        File.Copy(p0, p1);
        TestDisks.Scatter(p1, count: 20, seed: name[0] + 1);
        Cli.Ok("backup", p0, Path.Combine(dir, "full.bfi"));
        Cli.Ok("backup", p1, Path.Combine(dir, "inc.bfi"), "--parent", Path.Combine(dir, "full.bfi"));
        return (p0, p1);
    }
}
