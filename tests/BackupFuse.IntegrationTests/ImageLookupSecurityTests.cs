using System.Diagnostics;
using System.Security.Cryptography;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue #10 items 3, 4, 6, 7 and the passphrase check, on real mounts of the real daemon: identity lookups stay
/// inside the --images roots, a plugin serves only what its owner could read himself, a FIFO named *.bfi hangs
/// nothing, images moved while mounted are found again, a failed plugin recovers, a useless passphrase is refused.
/// </summary>
[Collection("mounts")]
public sealed class ImageLookupSecurityTests : IClassFixture<ImageLookupSecurityTests.Chain>
{
    private const string TestUser = "bfuse-test";

    private readonly Chain _c;

    public ImageLookupSecurityTests(Chain chain)
    {
        _c = chain;
    }

    /// <summary>A full and an incremental backup of a 32 MiB disk, and the raw disks they hold.</summary>
    public sealed class Chain : IDisposable
    {
        public Chain()
        {
            TestDisks.CreateMixed(Dir["p0.raw"], 32L << 20, seed: 31);
            File.Copy(Dir["p0.raw"], Dir["p1.raw"]);
            TestDisks.Scatter(Dir["p1.raw"], count: 10, seed: 32);
            Cli.Ok("backup", Dir["p0.raw"], Dir["full.bfi"]);
            Cli.Ok("backup", Dir["p1.raw"], Dir["inc.bfi"], "--parent", Dir["full.bfi"]);
            FullId = IdOf(Dir["full.bfi"]);
            IncId = IdOf(Dir["inc.bfi"]);
        }

        public TempDirectory Dir { get; } = new("bflookup");

        public Guid FullId { get; }

        public Guid IncId { get; }

        public void Dispose() => Dir.Dispose();

        private static Guid IdOf(string image) => BackupFuse.BackupImage.Reading.BackupImageFile.ReadHeader(image).ImageId;
    }

    [Fact]
    public void AnOutsideImageBehindASymlinkIsNotServedByIdentity()
    {
        using var t = new TempDirectory("bflk-a");
        string root = Sub(t, "images");
        string outside = Sub(t, "outside");
        string vms = Sub(t, "vms");
        File.Copy(_c.Dir["full.bfi"], Path.Combine(outside, "full.bfi"));
        File.CreateSymbolicLink(Path.Combine(root, "link.bfi"), Path.Combine(outside, "full.bfi"));
        File.Copy(_c.Dir["full.bfi"], Path.Combine(root, "good.bfi"));
        string bad = WritePlugin(vms, "bad.vhdx", Path.Combine(root, "missing.bfi"), _c.FullId);

        // The good copy has the same identity: with it present, identity lookups must pick it, not the symlink.
        string good = WritePlugin(vms, "good.vhdx", Path.Combine(root, "moved-away.bfi"), _c.FullId);
        using (var daemon = DaemonProcess.Start(vms, vms, "--images", root))
        {
            AssertSameDisk(good, _c.Dir["p0.raw"]);
        }

        File.Delete(Path.Combine(root, "good.bfi"));
        using (var daemon = DaemonProcess.Start(vms, vms, "--images", root))
        {
            var e = Record.Exception(() => File.ReadAllBytes(bad));
            Assert.IsType<UnauthorizedAccessException>(e);
            daemon.Stop();
            Assert.Matches(@"bad\.vhdx: .*missing\.bfi is missing, and image .* is only at .*link\.bfi: its real path .*outside/full\.bfi lies outside the --images directories", daemon.Log);
        }
    }

    [Fact]
    public void AParentReachableOnlyThroughAnOutsideSymlinkFailsWithAClearLine()
    {
        using var t = new TempDirectory("bflk-b");
        string root = Sub(t, "images");
        string outside = Sub(t, "outside");
        string vms = Sub(t, "vms");
        File.Copy(_c.Dir["full.bfi"], Path.Combine(outside, "full.bfi"));
        File.CreateSymbolicLink(Path.Combine(root, "full.bfi"), Path.Combine(outside, "full.bfi"));
        File.Copy(_c.Dir["inc.bfi"], Path.Combine(root, "inc.bfi"));
        string plugin = WritePlugin(vms, "inc.vhdx", Path.Combine(root, "inc.bfi"), _c.IncId);
        using var daemon = DaemonProcess.Start(vms, vms, "--images", root);

        var e = Record.Exception(() => File.ReadAllBytes(plugin));

        Assert.IsType<UnauthorizedAccessException>(e);
        daemon.Stop();
        Assert.Matches($@"inc\.vhdx: parent image {_c.FullId} of .*inc\.bfi was not found .*; image {_c.FullId} is only at .*images/full\.bfi: its real path .*outside/full\.bfi lies outside", daemon.Log);
    }

    [Fact]
    public void APluginServesOnlyImagesItsOwnerCouldReadHimself()
    {
        EnsureTestUser();
        using var t = new TempDirectory("bflk-perm");
        string root = Sub(t, "images");
        string vms = Sub(t, "vms");
        ExternalTool.Check("chmod", "0755", t.Path, root, vms);
        string image = Path.Combine(root, "full.bfi");
        File.Copy(_c.Dir["full.bfi"], image);
        ExternalTool.Check("chmod", "0600", image);
        string plugin = WritePlugin(vms, "user.vhdx", image, _c.FullId);
        ExternalTool.Check("chown", $"{TestUser}:{TestUser}", plugin);
        string rootPlugin = WritePlugin(vms, "root.vhdx", image, _c.FullId);

        // A damaged root-only image named by the user's plugin: refused for the owner before it is parsed, so its
        // problems (which only a reader of the image may learn) never reach the log for him.
        string broken = Path.Combine(root, "broken.bfi");
        File.WriteAllBytes(broken, File.ReadAllBytes(image)[..4096]);
        ExternalTool.Check("chmod", "0600", broken);
        string peek = WritePlugin(vms, "peek.vhdx", broken, _c.FullId);
        ExternalTool.Check("chown", $"{TestUser}:{TestUser}", peek);
        using var daemon = DaemonProcess.Start(vms, vms, "--images", root, "--allow-other");
        Assert.IsType<UnauthorizedAccessException>(Record.Exception(() => File.ReadAllBytes(peek)));
        static bool IsPeekLine(string l) => l.Contains("peek.vhdx", StringComparison.Ordinal) && l.Contains("cannot", StringComparison.Ordinal);
        var peekLines = daemon.WaitForLog(log => log.Split('\n').Any(IsPeekLine), TimeSpan.FromSeconds(10)).Split('\n').Where(IsPeekLine).ToList();
        Assert.NotEmpty(peekLines);
        Assert.All(peekLines, l => Assert.Contains("the plugin's owner cannot read the backup itself", l, StringComparison.Ordinal));

        // A root-owned plugin may name any image in the roots.
        string want = Sha256(File.ReadAllBytes(rootPlugin));

        // The user's plugin names a root-only image: refused, for root reading it and for the user himself.
        Assert.IsType<UnauthorizedAccessException>(Record.Exception(() => File.ReadAllBytes(plugin)));
        var asUser = AsTestUser("sha256sum", plugin);
        Assert.NotEqual(0, asUser.ExitCode);
        Assert.Contains("Permission denied", asUser.StdErr, StringComparison.Ordinal);

        // Readable through the user's group: served (after the failure's retry interval), to root and to the user.
        ExternalTool.Check("chgrp", TestUser, image);
        ExternalTool.Check("chmod", "0640", image);
        Thread.Sleep(BackupFuse.Daemon.Mounting.PluginProvider.RetryAfter + TimeSpan.FromMilliseconds(300));
        Assert.Equal(want, Sha256(File.ReadAllBytes(plugin)));
        asUser = AsTestUser("sha256sum", plugin);
        Assert.True(asUser.ExitCode == 0, asUser.Output);
        Assert.StartsWith(want, asUser.StdOut, StringComparison.OrdinalIgnoreCase);

        // Readable by everybody (0644, root's group): served too.
        ExternalTool.Check("chgrp", "root", image);
        ExternalTool.Check("chmod", "0644", image);
        WaitUntilClosed(daemon, image);
        asUser = AsTestUser("sha256sum", plugin);
        Assert.True(asUser.ExitCode == 0, asUser.Output);
        Assert.StartsWith(want, asUser.StdOut, StringComparison.OrdinalIgnoreCase);

        // Taken away again: the rule is checked on every open of the chain, not only the first; a directory on the
        // way that the user may not search hides the image as well as its own mode does.
        ExternalTool.Check("chmod", "0700", root);
        WaitUntilClosed(daemon, image);
        Assert.IsType<UnauthorizedAccessException>(Record.Exception(() => File.ReadAllBytes(plugin)));
        ExternalTool.Check("chmod", "0755", root);
        ExternalTool.Check("chmod", "0600", image);
        Assert.IsType<UnauthorizedAccessException>(Record.Exception(() => File.ReadAllBytes(plugin)));

        daemon.Stop();
        Assert.Contains($"has no search permission on directory {root}", daemon.Log, StringComparison.Ordinal);
        Assert.Matches($@"user\.vhdx: the plugin's owner cannot read the backup itself: user {TestUser} \(uid \d+\) may not read .*full\.bfi \(mode 0600, owner uid 0", daemon.Log);
    }

    [Fact]
    public async Task AFifoNamedBfiHangsNothing()
    {
        using var t = new TempDirectory("bflk-fifo");
        string root = Sub(t, "images");
        string vms = Sub(t, "vms");
        string fifo = Path.Combine(root, "x.bfi");
        ExternalTool.Check("mkfifo", fifo);
        File.Copy(_c.Dir["full.bfi"], Path.Combine(root, "full.bfi"));
        string bad = WritePlugin(vms, "fifo.vhdx", fifo, Guid.NewGuid());
        string good = WritePlugin(vms, "good.vhdx", Path.Combine(root, "full.bfi"), _c.FullId);

        // Named by a missing path: found by identity, through a catalog scan that meets the FIFO.
        string byId = WritePlugin(vms, "byid.vhdx", Path.Combine(root, "elsewhere.bfi"), _c.FullId);
        var daemon = DaemonProcess.Start(vms, vms, "--images", root);
        try
        {
            var badRead = Task.Run(() => Record.Exception(() => File.ReadAllBytes(bad)));
            await Task.Delay(500);
            var goodRead = Task.Run(() => Sha256(File.ReadAllBytes(good)));
            var byIdRead = Task.Run(() => Sha256(File.ReadAllBytes(byId)));
            var all = Task.WhenAll(badRead, goodRead, byIdRead);
            Assert.True(all == await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(30))), "a read through the mount hangs");
            Assert.IsAssignableFrom<IOException>(await badRead);
            Assert.Equal(await goodRead, await byIdRead);
            daemon.Stop();
            Assert.Matches($@"fifo\.vhdx.*{System.Text.RegularExpressions.Regex.Escape(fifo)}: not a regular file \(it is a FIFO\)", daemon.Log);
        }
        finally
        {
            // A regression blocks the daemon in open(2) on the FIFO: a writer releases it, then the mount can go.
            ExternalTool.Run("timeout", ["2", "sh", "-c", ": > \"$0\"", fifo], TimeSpan.FromSeconds(10));
            daemon.Dispose();
        }
    }

    [Fact]
    public async Task APluginWhoseImageBlocksDoesNotBlockTheOthers()
    {
        // The slow image lies on another FUSE mount whose daemon is stopped: any I/O on it waits until SIGCONT.
        using var t = new TempDirectory("bflk-slow");
        string fast = Sub(t, "fast");
        string slowDir = Sub(t, "slow");
        string empty = Sub(t, "empty");
        string vms = Sub(t, "vms");
        File.Copy(_c.Dir["full.bfi"], Path.Combine(fast, "full.bfi"));
        File.Copy(_c.Dir["full.bfi"], Path.Combine(slowDir, "slow.bfi"));
        string slowPlugin = WritePlugin(Sub(t, "vms/a"), "slow.vhdx", Path.Combine(slowDir, "slow.bfi"), _c.FullId);
        string fastPlugin = WritePlugin(Sub(t, "vms/b"), "fast.vhdx", Path.Combine(fast, "full.bfi"), _c.FullId);
        using var slowMount = DaemonProcess.Start(slowDir, slowDir, "--images", empty);
        using var daemon = DaemonProcess.Start(vms, vms, "--images", fast, "--images", slowDir);
        slowMount.Signal("STOP");
        try
        {
            var slowRead = Task.Run(() => Record.Exception(() => File.ReadAllBytes(slowPlugin)));
            await Task.Delay(1000);
            Assert.False(slowRead.IsCompleted, "the slow plugin did not block (the test does not test anything)");
            var fastRead = Task.Run(() => Sha256(File.ReadAllBytes(fastPlugin)));
            Assert.True(fastRead == await Task.WhenAny(fastRead, Task.Delay(TimeSpan.FromSeconds(30))), "a plugin waits for another plugin's blocked image");
            slowMount.Signal("CONT");
            Assert.True(slowRead == await Task.WhenAny(slowRead, Task.Delay(TimeSpan.FromSeconds(30))), "the slow plugin never finished");
            Assert.Null(await slowRead);
            Assert.Equal(await fastRead, Sha256(File.ReadAllBytes(slowPlugin)));
        }
        finally
        {
            slowMount.Signal("CONT");
        }
    }

    [Fact]
    public void ImagesRenamedAndMovedWhileMountedAreFoundAgain()
    {
        using var t = new TempDirectory("bflk-move");
        string first = Sub(t, "first");
        string second = Sub(t, "second");
        string vms = Sub(t, "vms");
        File.Copy(_c.Dir["full.bfi"], Path.Combine(first, "full.bfi"));
        File.Copy(_c.Dir["inc.bfi"], Path.Combine(first, "inc.bfi"));
        Cli.Ok("plugin", "create", Path.Combine(first, "inc.bfi"), Path.Combine(vms, "inc.vhdx"));
        string plugin = Path.Combine(vms, "inc.vhdx");
        using var daemon = DaemonProcess.Start(vms, vms, "--images", first, "--images", second);
        AssertSameDisk(plugin, _c.Dir["p1.raw"]);

        // Once the last handle is released the daemon closes the chain; the next open must find it again by identity.
        WaitUntilClosed(daemon, Path.Combine(first, "inc.bfi"));
        File.Move(Path.Combine(first, "inc.bfi"), Path.Combine(first, "inc-renamed.bfi"));
        File.Move(Path.Combine(first, "full.bfi"), Path.Combine(second, "full-moved.bfi"));

        AssertSameDisk(plugin, _c.Dir["p1.raw"]);

        // A plugin that appears now, naming the old path, is served too (read by its header's identity).
        string late = WritePlugin(vms, "late.vhdx", Path.Combine(first, "inc.bfi"), _c.IncId);
        AssertSameDisk(late, _c.Dir["p1.raw"]);
        daemon.Stop();
        Assert.Contains("inc-renamed.bfi", daemon.Log, StringComparison.Ordinal);
    }

    [Fact]
    public void APluginWhoseImageWasMissingWorksOnceTheImageIsCopiedIn()
    {
        using var t = new TempDirectory("bflk-late");
        string root = Sub(t, "images");
        string vms = Sub(t, "vms");
        string plugin = WritePlugin(vms, "late.vhdx", Path.Combine(root, "late.bfi"), _c.FullId);
        using var daemon = DaemonProcess.Start(vms, vms, "--images", root);
        Assert.IsAssignableFrom<IOException>(Record.Exception(() => File.ReadAllBytes(plugin)));

        File.Copy(_c.Dir["full.bfi"], Path.Combine(root, "copied-in.bfi"));

        var clock = Stopwatch.StartNew();
        while (Record.Exception(() => File.ReadAllBytes(plugin)) != null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the plugin still fails 15 s after its image arrived: {daemon.Log}");
            Thread.Sleep(200);
        }

        AssertSameDisk(plugin, _c.Dir["p0.raw"]);
    }

    [Fact]
    public void AMountWhosePassphraseOpensNoEncryptedImageIsRefused()
    {
        using var t = new TempDirectory("bflk-pass");
        string root = Sub(t, "images");
        string vms = Sub(t, "vms");
        File.WriteAllText(t["right"], "correct horse\n");
        File.WriteAllText(t["wrong"], "battery staple\n");
        Cli.Ok("backup", _c.Dir["p0.raw"], Path.Combine(root, "secret.bfi"), "--encrypt", "--passphrase-file", t["right"]);

        var wrong = Cli.Run("mount", vms, "--images", root, "--foreground", "--passphrase-file", t["wrong"]);
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("error: the passphrase opens none of the 1 encrypted images in", wrong.StdErr, StringComparison.Ordinal);
        Assert.Contains("wrong passphrase for", wrong.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("battery", wrong.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", wrong.Output, StringComparison.Ordinal);

        var none = Cli.RunWithEnv(new Dictionary<string, string> { ["BACKUPFUSE_PASSPHRASE"] = string.Empty }, "mount", vms, "--images", root, "--foreground");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("is not set or empty", none.StdErr, StringComparison.Ordinal);
        Assert.False(BackupFuse.Daemon.Mounting.MountTable.IsMounted(vms));

        // The background mode reports the same line and exit code (the child refuses before mounting).
        var background = Cli.Run("mount", vms, "--images", root, "--passphrase-file", t["wrong"]);
        Assert.Equal(1, background.ExitCode);
        Assert.Contains("wrong passphrase for", background.StdErr, StringComparison.Ordinal);

        using (var daemon = DaemonProcess.Start(vms, vms, "--images", root, "--passphrase-file", t["right"]))
        {
            Assert.True(BackupFuse.Daemon.Mounting.MountTable.IsLive(vms));
        }

        // Roots that also hold an unencrypted image: without a passphrase the mount serves that image and says that the
        // encrypted ones are not served; a wrong passphrase is still refused.
        File.Copy(_c.Dir["full.bfi"], Path.Combine(root, "plain.bfi"));
        Assert.Equal(1, Cli.Run("mount", vms, "--images", root, "--foreground", "--passphrase-file", t["wrong"]).ExitCode);
        using var mixed = DaemonProcess.StartWithEnv(vms, new Dictionary<string, string> { ["BACKUPFUSE_PASSPHRASE"] = string.Empty }, vms, "--images", root);
        Assert.True(BackupFuse.Daemon.Mounting.MountTable.IsLive(vms));
        Assert.Contains("the 1 encrypted images in", mixed.Log, StringComparison.Ordinal);
        Assert.Contains("will not be served", mixed.Log, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCliFollowsTheSameRootRule()
    {
        using var t = new TempDirectory("bflk-cli");
        string root = Sub(t, "images");
        string outside = Sub(t, "outside");
        string vms = Sub(t, "vms");
        File.Copy(_c.Dir["full.bfi"], Path.Combine(outside, "full.bfi"));
        File.CreateSymbolicLink(Path.Combine(root, "link.bfi"), Path.Combine(outside, "full.bfi"));
        string plugin = WritePlugin(vms, "p.vhdx", Path.Combine(root, "missing.bfi"), _c.FullId);

        var refused = Cli.Run("info", plugin, "--images", root);
        Assert.Equal(1, refused.ExitCode);
        Assert.Matches(@"^error: .*p\.vhdx: image .*missing\.bfi is missing, and image .* is only at .*link\.bfi: its real path .* lies outside", refused.StdErr);

        // Named by a real directory it is found by identity, as before.
        Cli.Ok("info", plugin, "--images", outside);
    }

    private static string Sub(TempDirectory t, string name) => Directory.CreateDirectory(t[name]).FullName;

    private static string WritePlugin(string dir, string name, string image, Guid id)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, $"backupfuse-plugin 1\nimage = {image}\nimage-id = {id}\n");
        return path;
    }

    private static void AssertSameDisk(string plugin, string raw)
    {
        var r = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, raw], TimeSpan.FromMinutes(2));
        Assert.True(r.ExitCode == 0, $"qemu-img compare {plugin} {raw}: {r.Output}");
    }

    /// <summary>Waits until the daemon has no descriptor open on <paramref name="image"/>.</summary>
    private static void WaitUntilClosed(DaemonProcess daemon, string image)
    {
        var clock = Stopwatch.StartNew();
        while (Directory.GetFiles($"/proc/{daemon.Pid}/fd").Any(fd => new FileInfo(fd).LinkTarget == image))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the daemon still holds {image} open");
            Thread.Sleep(50);
        }
    }

    private static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    private static void EnsureTestUser()
    {
        if (ExternalTool.Run("id", ["-u", TestUser]).ExitCode != 0)
        {
            ExternalTool.Check("useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", TestUser);
        }
    }

    private static ToolResult AsTestUser(string program, params string[] args) =>
        ExternalTool.Run("setpriv", ["--reuid", TestUser, "--regid", TestUser, "--init-groups", "--", program, .. args], TimeSpan.FromMinutes(1));
}
