using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 10 through real mounts: the root daemon never follows a symlink to where it keeps a plugin's changes, creates
/// them with the plugin owner's ownership and only on the first write; export includes a guest's write into the
/// rounded-up tail of an unaligned disk and refuses while a process writes to the disk; reset refuses a file that is
/// not a plugin.
/// </summary>
[Collection("mounts")]
public sealed class ChangesSafetyTests : IDisposable
{
    private const long DiskSize = 8L << 20;
    private readonly TempDirectory _dir = new("bfsafe");
    private readonly string _images;
    private readonly string _vms;
    private readonly string _outside;

    public ChangesSafetyTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        _outside = _dir["outside"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        Directory.CreateDirectory(_outside);
        TestDisks.CreateMixed(_dir["disk.raw"], DiskSize, seed: 31);
        Cli.Ok("backup", _dir["disk.raw"], Path.Combine(_images, "disk.bfi"));
    }

    public void Dispose()
    {
        foreach (var mountPoint in new[] { _vms, _dir["at"] })
        {
            if (MountTable.IsMounted(mountPoint))
            {
                ExternalTool.Run("umount", ["-l", mountPoint]);
            }
        }

        _dir.Dispose();
    }

    [Fact]
    public void ASymlinkedStateDirectoryIsNotFollowed()
    {
        Directory.CreateDirectory(Path.Combine(_vms, "u"));
        string plugin = Plugin("u/x.vhdx");
        File.CreateSymbolicLink(Path.Combine(_vms, "u", ".backupfuse"), _outside);
        using (var daemon = Mount())
        {
            // Reads show the pristine backup; the first write fails, with one log line naming the symlink.
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
            AssertWriteFails(plugin);
            daemon.Stop();
            var lines = daemon.Log.Split('\n').Where(l => l.Contains("symbolic link", StringComparison.Ordinal)).ToList();
            Assert.True(lines.Count == 1, $"expected one log line about the symlink: {daemon.Log}");
            Assert.Contains(Path.Combine(_vms, "u", ".backupfuse"), lines[0], StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", daemon.Log, StringComparison.Ordinal);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(_outside));
    }

    [Fact]
    public void AChangesFileThatIsASymlinkIsNeitherOpenedNorWritten()
    {
        string plugin = Plugin("disk.vhdx");
        using (var daemon = Mount())
        {
            QemuIo(plugin, "write -P 0x5a 0 64K");
        }

        // A valid changes file moved outside and linked back: following the link would write the guest's data there.
        string state = Path.Combine(_vms, ".backupfuse");
        string target = Path.Combine(_outside, "victim.vhdx");
        File.Move(Path.Combine(state, "disk.changes.vhdx"), target);
        File.CreateSymbolicLink(Path.Combine(state, "disk.changes.vhdx"), target);
        string before = Hash(target);
        using (var daemon = Mount())
        {
            AssertWriteFails(plugin);
            daemon.Stop();
            Assert.Contains("symbolic link", daemon.Log, StringComparison.Ordinal);
        }

        Assert.Equal(before, Hash(target));
    }

    [Fact]
    public void AChangesFileOfAnotherUserIsNotOpened()
    {
        string plugin = Plugin("disk.vhdx");
        using (var daemon = Mount())
        {
            QemuIo(plugin, "write -P 0x5b 0 64K");
        }

        string changes = Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx");
        ExternalTool.Check("chown", "12345", changes);
        string before = Hash(changes);
        using (var daemon = Mount())
        {
            AssertWriteFails(plugin);
            daemon.Stop();
            Assert.Contains("belongs to uid 12345", daemon.Log, StringComparison.Ordinal);
        }

        Assert.Equal(before, Hash(changes));
    }

    [Fact]
    public void AChangesFileWithASecondHardLinkIsNotOpened()
    {
        string plugin = Plugin("disk.vhdx");
        using (var daemon = Mount())
        {
            QemuIo(plugin, "write -P 0x5c 0 64K");
        }

        string other = Path.Combine(_outside, "other-name.vhdx");
        ExternalTool.Check("ln", Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx"), other);
        string before = Hash(other);
        using (var daemon = Mount())
        {
            AssertWriteFails(plugin);
        }

        Assert.Equal(before, Hash(other));
    }

    [Fact]
    public void ResetDoesNotFollowASymlinkedStateDirectory()
    {
        string plugin = Plugin("disk.vhdx");
        File.WriteAllText(Path.Combine(_outside, "disk.changes.vhdx"), "keep me");
        File.WriteAllText(Path.Combine(_outside, "disk.base.vhdx"), "keep me too");
        File.CreateSymbolicLink(Path.Combine(_vms, ".backupfuse"), _outside);
        Assert.Contains("no changes to drop", Cli.Ok("reset", plugin).StdErr, StringComparison.Ordinal);
        Assert.Equal(2, Directory.GetFiles(_outside).Length);
    }

    [Fact]
    public void NewStateFilesBelongToThePluginsOwner()
    {
        string plugin = Plugin("disk.vhdx");
        ExternalTool.Check("chown", "65534:65534", plugin);
        ExternalTool.Check("chmod", "0640", plugin);
        // The plugin's owner must be able to read the image itself (the mount's owner rule): open the path to it.
        ExternalTool.Check("chmod", "0755", _dir.Path, _images);
        ExternalTool.Check("chmod", "0644", Path.Combine(_images, "disk.bfi"));
        using (var daemon = Mount())
        {
            QemuIo(plugin, "write -P 0x6b 1M 4096");
        }

        string state = Path.Combine(_vms, ".backupfuse");
        Assert.Equal("0:0 755 directory", StatOf(state)); // shared by every plugin there: the daemon's, so no owner can move the others' files
        Assert.Equal("65534:65534 640 regular file", StatOf(Path.Combine(state, "disk.changes.vhdx")));
        Assert.Equal("65534:65534 640 regular file", StatOf(Path.Combine(state, "disk.base.vhdx")));
        Assert.Empty(Directory.GetFiles(state, "*.tmp"));
    }

    [Fact]
    public void OnlyTheFirstWriteCreatesTheChanges()
    {
        string plugin = Plugin("disk.vhdx");
        string state = Path.Combine(_vms, ".backupfuse");
        using (var daemon = Mount())
        {
            using (var readOnly = File.OpenHandle(plugin))
            {
                Assert.Equal(4096, RandomAccess.Read(readOnly, new byte[4096], 0));
            }

            using (File.OpenHandle(plugin, FileMode.Open, FileAccess.ReadWrite))
            {
                // Opened for writing, nothing written yet.
            }

            QemuIo(plugin, "-r", "read 0 1M");
            Assert.False(Directory.Exists(state), "an open without a write created the state directory");
            QemuIo(plugin, "write -P 0x3c 2M 70000");
            Assert.True(File.Exists(Path.Combine(state, "disk.changes.vhdx")));
            QemuIo(plugin, "read -P 0x3c 2M 70000");
        }

        using (var daemon = Mount())
        {
            QemuIo(plugin, "read -P 0x3c 2M 70000");
        }
    }

    [Fact]
    public void ExportIncludesAGuestWriteIntoTheRoundedUpTail()
    {
        // A disk of 1 MiB + 100 bytes: the VHDX shows 1 MiB + 512 and a guest may write the whole last sector.
        const long odd = (1L << 20) + 100;
        TestDisks.CreateMixed(_dir["odd.raw"], odd, seed: 32);
        Cli.Ok("backup", _dir["odd.raw"], Path.Combine(_images, "odd.bfi"));
        string plugin = Path.Combine(_vms, "odd.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(_images, "odd.bfi"), plugin);
        long virtualSize;
        using (var daemon = Mount())
        {
            virtualSize = VirtualSize(plugin);
            Assert.Equal((1L << 20) + 512, virtualSize);
            QemuIo(plugin, "write -P 0x9e 1048576 512");
        }

        using (var daemon = Mount())
        {
            QemuIo(plugin, "read -P 0x9e 1048576 512");
        }

        Cli.Ok("export", plugin, _dir["odd-out.raw"], "--format", "raw");
        Cli.Ok("export", plugin, _dir["odd-out.vhdx"], "--format", "vhdx");
        var raw = File.ReadAllBytes(_dir["odd-out.raw"]);
        Assert.Equal(virtualSize, raw.Length);
        Assert.All(raw[(1 << 20)..], b => Assert.Equal(0x9e, b));
        Assert.Equal(File.ReadAllBytes(_dir["odd.raw"])[..(1 << 20)], raw[..(1 << 20)]);
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "vhdx", _dir["odd-out.vhdx"], plugin).StdOut, StringComparison.Ordinal);
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "raw", "-F", "vhdx", _dir["odd-out.raw"], plugin).StdOut, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ExportRefusesWhileAProcessHoldsThePluginOpenForWriting()
    {
        string plugin = Plugin("disk.vhdx");
        using (var daemon = Mount())
        {
            using (var holder = Hold(plugin, "<>"))
            {
                var refused = Cli.Run("export", plugin, _dir["held.raw"]);
                Assert.Equal(1, refused.ExitCode);
                Assert.Single(refused.StdErr.Trim().Split('\n'));
                Assert.Contains($"in use by sleep (pid {holder.Id})", refused.StdErr, StringComparison.Ordinal);
                Assert.False(File.Exists(_dir["held.raw"]));

                // The same disk named through a symlinked directory.
                File.CreateSymbolicLink(_dir["link"], _vms);
                Assert.Equal(1, Cli.Run("export", Path.Combine(_dir["link"], "disk.vhdx"), _dir["held.raw"]).ExitCode);
            }

            using (var reader = Hold(plugin, "<"))
            {
                // A reader does not change the disk: export goes ahead.
                Cli.Ok("export", plugin, _dir["read.raw"]);
            }
        }

        Assert.True(TestDisks.SameContent(_dir["disk.raw"], _dir["read.raw"]), "export differs from the backup");
    }

    [Fact]
    public void ResetRefusesAFileThatIsNotAPlugin()
    {
        File.WriteAllText(_dir["notes.vhdx"], "not a plugin\n");
        foreach (var file in new[] { _dir["notes.vhdx"], Path.Combine(_images, "disk.bfi") })
        {
            var r = Cli.Run("reset", file);
            Assert.Equal(1, r.ExitCode);
            Assert.Single(r.StdErr.Trim().Split('\n'));
            Assert.Contains($"{file}: not a plugin file", r.StdErr, StringComparison.Ordinal);
        }

        // A plugin without changes is fine.
        string plugin = Plugin("disk.vhdx");
        Assert.Contains("no changes to drop", Cli.Ok("reset", plugin).StdErr, StringComparison.Ordinal);
    }

    private static void AssertWriteFails(string plugin)
    {
        // The open fails (changes that cannot be opened) or the write does (changes that cannot be created).
        var e = Record.Exception(() =>
        {
            using var handle = File.OpenHandle(plugin, FileMode.Open, FileAccess.ReadWrite);
            RandomAccess.Write(handle, new byte[4096], 4L << 20);
        });
        Assert.True(e is IOException or UnauthorizedAccessException, $"the write did not fail: {e}");
    }

    [Fact]
    public void APluginTouchedWhileOpenKeepsOneWriterAndAnotherOwnersStackIsRefused()
    {
        string underlying = Plugin("disk.vhdx");
        ExternalTool.Check("chmod", "0755", _dir.Path, _images);
        ExternalTool.Check("chmod", "0644", Path.Combine(_images, "disk.bfi"));

        // Mounted elsewhere (--at), so the plugin file underneath can be given to another owner: a chown through the
        // mount only changes how the mount shows the plugin (VirtualFileOwnership).
        string at = _dir["at"];
        Directory.CreateDirectory(at);
        string plugin = Path.Combine(at, "disk.vhdx");
        using var daemon = DaemonProcess.Start(at, [_vms, "--images", _images, "--at", at]);
        QemuIo(plugin, "write -P 0x5a 1M 4096");
        string changes = Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx");
        using (Hold(plugin, "<>"))
        {
            Assert.Equal(1, DescriptorsOn(daemon.Pid, changes));

            // A new version of the same plugin file (a touch): its opens share the open stack, one writer on the file.
            File.SetLastWriteTimeUtc(underlying, DateTime.UtcNow.AddMinutes(1));
            QemuIo(plugin, "write -P 0x6b 2M 4096", "read -P 0x5a 1M 4096");
            Assert.Equal(1, DescriptorsOn(daemon.Pid, changes));

            // The plugin given to another owner serves through another stack: refused while the first holds the file.
            ExternalTool.Check("chown", "65534:65534", underlying);
            var refused = ExternalTool.Run("qemu-io", ["-f", "vhdx", "-c", "read 0 4096", plugin]);
            Assert.True(refused.ExitCode != 0 || refused.Output.Contains("error", StringComparison.OrdinalIgnoreCase), $"a second writer was let in: {refused.Output}");
            Assert.Equal(1, DescriptorsOn(daemon.Pid, changes));
        }

        Assert.Contains("already open in this daemon", daemon.Log, StringComparison.Ordinal);
        QemuIo(plugin, "read -P 0x5a 1M 4096", "read -P 0x6b 2M 4096");
    }

    private static int DescriptorsOn(int pid, string path) =>
        Directory.GetFiles($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget == path;
            }
            catch (IOException)
            {
                return false; // closed meanwhile
            }
        });

    private static void QemuIo(string plugin, params string[] commands)
    {
        var args = new List<string> { "-f", "vhdx" };
        foreach (var c in commands)
        {
            if (c.StartsWith('-'))
            {
                args.Add(c);
                continue;
            }

            args.Add("-c");
            args.Add(c);
        }

        args.Add(plugin);
        var r = ExternalTool.Run("qemu-io", args);
        Assert.True(r.ExitCode == 0 && !r.Output.Contains("Pattern verification failed", StringComparison.Ordinal) && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase), $"qemu-io {string.Join(" | ", commands)}: {r.Output}");
    }

    private static long VirtualSize(string vhdx)
    {
        string json = ExternalTool.Check("qemu-img", "info", "--output=json", vhdx).StdOut;
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("virtual-size").GetInt64();
    }

    private static string StatOf(string path) => ExternalTool.Check("stat", "-c", "%u:%g %a %F", path).StdOut.Trim();

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>A process (sleep) holding <paramref name="path"/> open, with bash redirection <paramref name="mode"/> ("&lt;" or "&lt;&gt;").</summary>
    private static HeldOpen Hold(string path, string mode)
    {
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec 3{mode}\"$1\"; exec sleep 120");
        psi.ArgumentList.Add("hold");
        psi.ArgumentList.Add(path);
        var p = Process.Start(psi)!;
        var clock = Stopwatch.StartNew();
        string fd = $"/proc/{p.Id.ToString(CultureInfo.InvariantCulture)}/fd/3";
        while (!(File.Exists($"/proc/{p.Id}/comm") && File.ReadAllText($"/proc/{p.Id}/comm").Trim() == "sleep" && new FileInfo(fd).LinkTarget == path))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20) && !p.HasExited, $"the holder of {path} did not start");
            Thread.Sleep(20);
        }

        return new HeldOpen(p);
    }

    private sealed class HeldOpen(Process process) : IDisposable
    {
        public int Id => process.Id;

        public void Dispose()
        {
            process.Kill();
            process.WaitForExit();
            process.Dispose();
        }
    }

    private string Plugin(string relativePath)
    {
        string plugin = Path.Combine(_vms, relativePath);
        Cli.Ok("plugin", "create", Path.Combine(_images, "disk.bfi"), plugin);
        return plugin;
    }

    private DaemonProcess Mount(params string[] extra) => DaemonProcess.Start(_vms, [_vms, "--images", _images, .. extra]);
}
