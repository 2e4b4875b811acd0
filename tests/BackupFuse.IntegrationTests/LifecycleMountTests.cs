using System.Security.Cryptography;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 15 through real FUSE mounts: `commit` of what a guest wrote (QEMU) equals the plugin's disk, `--reset` moves
/// the plugin to the new point; a plugin held open while its point is merged and pruned keeps reading the same bytes;
/// prune never deletes what a plugin names or a mount has open; commit survives a kill at every phase.
/// </summary>
[Collection("mounts")]
public sealed class LifecycleMountTests : IDisposable
{
    private const long DiskSize = 24L << 20;
    private readonly TempDirectory _dir = new("bflifemnt");
    private readonly string _vms;

    public LifecycleMountTests()
    {
        _vms = _dir["vms"];
        Directory.CreateDirectory(_vms);
    }

    public void Dispose()
    {
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    [Fact]
    public void CommitStoresWhatTheGuestWroteAndResetMovesThePluginToIt()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 3, seed: 21);
        string plugin = Path.Combine(_vms, "web.vhdx");
        Cli.Ok("plugin", "create", chain.PathOf(3), plugin);
        using (var daemon = Mount(chain))
        {
            QemuIo(plugin, "write -P 0x5a 1M 3M", "write -P 0x21 20000 777", $"write -z {DiskSize - (2 << 20)} 1M");

            // Refused while the disk is open.
            using (var open = File.OpenHandle(plugin))
            {
                var refused = Cli.Run("commit", plugin, _dir["images/busy.bfi"]);
                Assert.Equal(1, refused.ExitCode);
                Assert.Contains("in use", refused.StdErr, StringComparison.Ordinal);
                Assert.False(File.Exists(_dir["images/busy.bfi"]));
            }
        }

        Cli.Ok("export", plugin, _dir["before.raw"]);
        string committed = _dir["images/committed.bfi"];
        var r = Cli.Ok("commit", plugin, committed, "--json");
        Assert.Contains("\"reset\": false", r.StdOut, StringComparison.Ordinal);
        var header = BackupImageFile.ReadHeader(committed);
        Assert.Equal(chain.Ids[3], header.ParentId);
        Assert.True(new FileInfo(committed).Length < new FileInfo(chain.PathOf(0)).Length / 3, "the commit stored more than the changes");
        Cli.Ok("export", committed, _dir["committed.raw"]);
        Assert.True(TestDisks.SameContent(_dir["before.raw"], _dir["committed.raw"]), "export of the committed point differs from the plugin's disk");

        // --reset: the plugin names the new point and has no changes; it still reads the same disk. The plugin keeps
        // its owner and mode (a plugin may belong to the user whose VM uses it).
        ExternalTool.Check("chown", "65534:65534", plugin);
        ExternalTool.Check("chmod", "0640", plugin);
        Cli.Ok("commit", plugin, _dir["images/committed2.bfi"], "--reset");
        Assert.Equal("65534:65534 640", ExternalTool.Check("stat", "-c", "%u:%g %a", plugin).StdOut.Trim());
        ExternalTool.Check("chown", "0:0", plugin); // nobody may not read the images: the mount would refuse him the plugin
        ExternalTool.Check("chmod", "0644", plugin);
        Assert.Contains("committed2.bfi", File.ReadAllText(plugin), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_vms, ".backupfuse", "web.changes.vhdx")));
        Assert.Contains("none (reads as the backup point)", Cli.Ok("info", plugin).StdOut, StringComparison.Ordinal);
        using (var daemon = Mount(chain))
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", plugin, _dir["before.raw"]).StdOut, StringComparison.Ordinal);
        }

        var nothing = Cli.Run("commit", plugin, _dir["images/empty.bfi"]);
        Assert.Equal(1, nothing.ExitCode);
        Assert.Contains("no changes to commit", nothing.StdErr, StringComparison.Ordinal);

        // Prune keeps what the plugin names (committed2), and its chain.
        Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "1", "--plugins", _vms);
        Cli.Ok("export", plugin, _dir["after-prune.raw"]);
        Assert.True(TestDisks.SameContent(_dir["before.raw"], _dir["after-prune.raw"]), "the plugin reads other bytes after prune");
    }

    [Fact]
    public void AnOpenPluginKeepsReadingTheSameBytesWhileItsPointIsMergedAndPruned()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 6, seed: 22);
        string plugin = Path.Combine(_vms, "disk.vhdx");
        Cli.Ok("plugin", "create", chain.PathOf(6), plugin);
        string reference;
        using (var daemon = Mount(chain))
        {
            using var handle = File.OpenHandle(plugin);
            reference = Hash(handle);
            using var stop = new CancellationTokenSource();
            int reads = 0;
            string? mismatch = null;
            var reader = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    string h = Hash(handle);
                    if (h != reference)
                    {
                        mismatch = $"read {reads}: the open plugin read other bytes";
                    }

                    reads++;
                }
            });
            reader.Start();

            try
            {
                Cli.Ok("merge", chain.PathOf(4), "--into-parent");
                Cli.Ok("merge", chain.PathOf(6));

                // The daemon has the chain's files open: prune deletes none of them. p04's file was replaced by the
                // merge (the daemon reads the old one, unlinked), so nothing has the new one open: that point may go.
                var pruned = Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "1");
                Assert.Contains("open by", pruned.StdOut, StringComparison.Ordinal);
                var present = chain.PresentIds();
                Assert.All(new[] { 0, 1, 2, 3, 5, 6 }, i => Assert.True(present.Contains(chain.Ids[i]), $"prune deleted p{i:00}, which the mount has open"));
                chain.AssertEveryPresentPointReadsItsBytes("after prune during the mount");
                Thread.Sleep(500);
            }
            finally
            {
                stop.Cancel();
                reader.Join();
            }

            Assert.Null(mismatch);
            Assert.True(reads >= 2, "the reader did not read during the merges");

            // A new open gets the synthetic full and the same bytes.
            using var again = File.OpenHandle(plugin);
            Assert.Equal(reference, Hash(again));
        }

        Cli.Ok("prune", "--images", chain.Directory, "--keep-last", "1");
        Assert.Single(Directory.GetFiles(chain.Directory, "*.bfi"));
        using (var daemon = Mount(chain))
        {
            using var handle = File.OpenHandle(plugin);
            Assert.Equal(reference, Hash(handle));
        }
    }

    [Fact]
    public void CommitWithResetSurvivesAKillAtEveryPhase()
    {
        var chain = LifecycleChain.Create(_dir["images"], _dir["disk.raw"], DiskSize, incrementals: 2, seed: 23);
        string plugin = Path.Combine(_vms, "crash.vhdx");
        Cli.Ok("plugin", "create", chain.PathOf(2), plugin);
        using (var daemon = Mount(chain))
        {
            QemuIo(plugin, "write -P 0x77 2M 1M", "write -P 0x78 9M 64K");
        }

        Cli.Ok("export", plugin, _dir["guest.raw"]);
        string guest = LifecycleChain.HashFile(_dir["guest.raw"]);
        ExternalTool.Check("cp", "-a", chain.Directory, _dir["images.pristine"]);
        ExternalTool.Check("cp", "-a", _vms, _dir["vms.pristine"]);
        string dest = Path.Combine(chain.Directory, "commit.bfi");
        int phase = 1;
        for (; phase < 20; phase++)
        {
            ExternalTool.Check("rm", "-rf", chain.Directory, _vms);
            ExternalTool.Check("cp", "-a", _dir["images.pristine"], chain.Directory);
            ExternalTool.Check("cp", "-a", _dir["vms.pristine"], _vms);
            var r = Cli.RunWithEnv(new Dictionary<string, string> { [CrashPoint.Variable] = phase.ToString(System.Globalization.CultureInfo.InvariantCulture) }, "commit", plugin, dest, "--reset");
            chain.AssertEveryPresentPointReadsItsBytes($"commit killed at phase {phase}");
            if (r.ExitCode == 0)
            {
                break;
            }

            Assert.True(r.ExitCode == 137, $"phase {phase}: expected a SIGKILL (137), got {r.ExitCode}: {r.Output}");
            Assert.True(chain.PresentIds().IsSupersetOf(chain.Ids), $"phase {phase}: a point is gone");

            // The guest's disk is somewhere: the plugin still reads it, or (killed between rewriting the plugin and
            // dropping the changes) the committed point holds it, and `reset` makes the plugin usable again.
            string exported = _dir[$"p{phase}.raw"];
            var e = Cli.Run("export", plugin, exported);
            if (e.ExitCode == 0)
            {
                Assert.Equal(guest, LifecycleChain.HashFile(exported));
            }
            else
            {
                Assert.Contains("commit.bfi", File.ReadAllText(plugin), StringComparison.Ordinal);
                Cli.Ok("export", dest, exported);
                Assert.Equal(guest, LifecycleChain.HashFile(exported));
                Cli.Ok("reset", plugin);
                Cli.Ok("export", plugin, _dir[$"p{phase}b.raw"]);
                Assert.Equal(guest, LifecycleChain.HashFile(_dir[$"p{phase}b.raw"]));
            }

            File.Delete(exported);
        }

        Assert.True(phase - 1 >= 3, $"only {phase - 1} write phases were interrupted");
        Cli.Ok("export", plugin, _dir["final.raw"]);
        Assert.Equal(guest, LifecycleChain.HashFile(_dir["final.raw"]));
    }

    private DaemonProcess Mount(LifecycleChain chain) => DaemonProcess.Start(_vms, [_vms, "--images", chain.Directory]);

    private static void QemuIo(string plugin, params string[] commands)
    {
        var args = new List<string> { "-f", "vhdx" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(plugin);
        var r = ExternalTool.Run("qemu-io", args);
        Assert.True(r.ExitCode == 0 && !r.Output.Contains("failed", StringComparison.OrdinalIgnoreCase), r.Output);
    }

    private static string Hash(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long length = RandomAccess.GetLength(handle);
        for (long pos = 0; pos < length;)
        {
            int n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - pos)), pos);
            if (n == 0)
            {
                break;
            }

            sha.AppendData(buffer, 0, n);
            pos += n;
        }

        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
