using System.Security.Cryptography;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;
using BackupFuse.Vhdx;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 7 acceptance through real mounts: QEMU writes to a plugin, the changes land in a real differencing VHDX
/// (checked by libvhdi and 7-Zip), survive remounts and daemon crashes (SIGKILL) as far as they were flushed, and
/// the backup files never change. Also --read-only, --volatile, reset and export.
/// </summary>
[Collection("mounts")]
public sealed class WriteTests : IDisposable
{
    private const long DiskSize = 96L << 20;
    private readonly TempDirectory _dir = new("bfwrite");
    private readonly string _images;
    private readonly string _vms;
    private readonly string _plugin;
    private readonly string _imageHash;

    public WriteTests()
    {
        _images = _dir["images"];
        _vms = _dir["vms"];
        Directory.CreateDirectory(_images);
        Directory.CreateDirectory(_vms);
        TestDisks.CreateMixed(_dir["disk.raw"], DiskSize, seed: 21);
        Cli.Ok("backup", _dir["disk.raw"], Path.Combine(_images, "disk.bfi"));
        _plugin = Path.Combine(_vms, "disk.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(_images, "disk.bfi"), _plugin);
        _imageHash = HashImages();
    }

    public void Dispose()
    {
        // A test that failed between a daemon kill and the next mount leaves a dead mount: detach it first.
        if (MountTable.IsMounted(_vms))
        {
            ExternalTool.Run("umount", ["-l", _vms]);
        }

        _dir.Dispose();
    }

    [Fact]
    public void QemuWritesPersistAcrossRemountsAndTheBackupNeverChanges()
    {
        using (var daemon = Mount())
        {
            QemuIo("write -P 0xab 0 1M", "write -P 0xcd 5000 7", $"write -P 0xef {DiskSize - 4096} 4096");
            var rng = new Random(5);
            var writes = Enumerable.Range(0, 60).Select(_ => (Offset: rng.NextInt64(2 << 20, DiskSize - (70 << 10)), Length: rng.Next(1, 65536), Pattern: rng.Next(1, 255))).ToList();
            QemuIo([.. writes.Select(w => $"write -P {w.Pattern} {w.Offset} {w.Length}")]);
            QemuIo("read -P 0xab 0 5000", "read -P 0xcd 5000 7", "read -P 0xab 5007 1043569", $"read -P 0xef {DiskSize - 4096} 4096");
            Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", _plugin).StdOut, StringComparison.Ordinal);
            ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", _plugin, _dir["before.raw"]);
        }

        using (var daemon = Mount())
        {
            QemuIo("read -P 0xab 0 5000", "read -P 0xcd 5000 7", $"read -P 0xef {DiskSize - 4096} 4096");
            ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", _plugin, _dir["after.raw"]);
            Assert.True(TestDisks.SameContent(_dir["before.raw"], _dir["after.raw"]), "the disk differs after a remount");
            Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", _plugin).StdOut, StringComparison.Ordinal);
            Assert.False(TestDisks.SameContent(_dir["disk.raw"], _dir["after.raw"]));
        }

        Assert.Equal(_imageHash, HashImages());
    }

    [Fact]
    public void TheChangesAreARealDifferencingVhdxThatLibvhdiAnd7ZipRead()
    {
        using var daemon = Mount();
        QemuIo("write -P 0x11 0 3M", "write -P 0x22 40M 4096", "write -P 0x33 50000 1000");
        ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", _plugin, _dir["qemu.raw"]);
        string changes = Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx");
        var info = ExternalTool.Check("vhdiinfo", changes);
        Assert.Contains("Differential", info.StdOut, StringComparison.Ordinal);
        using (var chain = BackupFuse.BackupImage.Reading.BackupChain.Open(Path.Combine(_images, "disk.bfi")))
        {
            var layout = VhdxLayout.Create(chain.DiskSize, chain.Top.Id);
            Assert.Contains($"Parent identifier\t: {layout.DataWriteGuid:D}", info.StdOut, StringComparison.Ordinal);
        }

        using var mnt = new TempDirectory("bfvhdiw");
        ExternalTool.Check("vhdimount", changes, mnt.Path);
        try
        {
            Assert.True(TestDisks.SameContent(Path.Combine(mnt.Path, "vhdi2"), _dir["qemu.raw"]), "libvhdi reads other bytes than QEMU");
        }
        finally
        {
            ExternalTool.Run("fusermount3", ["-u", mnt.Path]);
        }

        var sevenZip = ExternalTool.Run("7zz", ["t", "-tvhdx", changes]);
        Assert.True(sevenZip.ExitCode == 0 && sevenZip.StdOut.Contains("Everything is Ok", StringComparison.Ordinal), sevenZip.Output);
    }

    [Fact]
    public void FlushedWritesSurviveDaemonCrashes()
    {
        const int Slot = 64 << 10;
        var rng = new Random(77);
        var slots = Enumerable.Range(0, (int)(DiskSize / Slot)).OrderBy(_ => rng.Next()).ToArray();
        int next = 0;
        var acknowledged = new List<(long Offset, byte[] Data)>();
        var origin = new Dictionary<long, string>();
        var pending = new List<(long Offset, byte[] Data)>();
        long payload;
        using (var reference = new ReferenceVhdx(_images, "disk.bfi"))
        {
            payload = reference.PayloadOffset;
        }

        for (int round = 0; round < 8 && next < slots.Length - 40; round++)
        {
            var daemon = Mount();
            int delay = rng.Next(50, 400);
            // The delay counts from the round's first acknowledged write, so a slow first open (a loaded machine) cannot
            // use up every round's window before anything was written (up to 60 s: then the kill comes anyway).
            using var writing = new ManualResetEventSlim();
            var killer = new Thread(() =>
            {
                writing.Wait(TimeSpan.FromSeconds(60));
                Thread.Sleep(delay);
                daemon.Signal("KILL");
            });
            killer.Start();
            try
            {
                using var h = File.OpenHandle(_plugin, FileMode.Open, FileAccess.ReadWrite);
                while (next < slots.Length)
                {
                    // Each write goes to a fresh 64 KiB slot, so an unacknowledged write never hides an acknowledged one.
                    var data = new byte[rng.Next(1, Slot + 1)];
                    rng.NextBytes(data);
                    long offset = (long)slots[next++] * Slot + rng.Next(0, Slot - data.Length + 1);
                    RandomAccess.Write(h, data, payload + offset);
                    writing.Set();
                    pending.Add((offset, data));
                    if (pending.Count % 5 == 0)
                    {
                        Fsync(h);
                        foreach (var p in pending)
                        {
                            origin[p.Offset] = $"fsync in round {round}";
                        }

                        acknowledged.AddRange(pending);
                        pending.Clear();
                    }
                }
            }
            catch (IOException)
            {
                // The daemon died under the writer: ENOTCONN/EIO. What was flushed must be there after a remount.
            }
            finally
            {
                writing.Set(); // a writer that failed before its first write still lets the killer go
                killer.Join();
            }

            daemon.WaitForExit(TimeSpan.FromSeconds(10));
            // The mount is gone (auto_unmount) or, if the kill caught the writer inside a request, dead until the next
            // mount removes it. Either way the next daemon must come up and serve every flushed write.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (MountTable.IsLive(_vms) && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(20); // fusermount3 may still be unmounting
            }

            if (MountTable.IsLive(_vms))
            {
                var helpers = ExternalTool.Run("sh", ["-c", "ps -eo pid,ppid,etimes,args | grep -E 'fusermount|backupfuse' | grep -v grep"]);
                Assert.Fail($"a killed daemon (pid {daemon.Pid}) left a live-looking mount after {clock.Elapsed.TotalSeconds:F1} s; mounts: {string.Join("; ", MountTable.List())}; processes:\n{helpers.StdOut}");
            }
            string killedLog = daemon.Log;
            daemon.Dispose();

            using var again = Mount();
            using (var r = File.OpenHandle(_plugin))
            {
                foreach (var (offset, data) in acknowledged)
                {
                    var got = new byte[data.Length];
                    ReadFully(r, got, payload + offset);
                    if (!got.AsSpan().SequenceEqual(data))
                    {
                        int firstBad = got.AsSpan().CommonPrefixLength(data);
                        int index = acknowledged.FindIndex(a => a.Offset == offset);
                        Assert.Fail($"origin {origin.GetValueOrDefault(offset)}; round {round}: a flushed write at disk offset {offset} ({data.Length} bytes, #{index} of {acknowledged.Count} acknowledged) is lost from byte {firstBad} (disk offset {offset + firstBad}, block {(offset + firstBad) / (2 << 20)}); got {got[firstBad]:x2} want {data[firstBad]:x2}; matches-after {got.AsSpan(firstBad).CommonPrefixLength(data.AsSpan(firstBad))}\nkilled daemon's log:\n{killedLog}");
                    }

                }

                // Unflushed writes may be lost, but never turn into garbage: each sector is the old or the new bytes.
                using var reference = new ReferenceVhdx(_images, "disk.bfi");
                foreach (var (offset, data) in pending)
                {
                    var got = new byte[data.Length];
                    var old = new byte[data.Length];
                    ReadFully(r, got, payload + offset);
                    reference.Read(payload + offset, old);
                    for (int i = 0; i < data.Length; i++)
                    {
                        Assert.True(got[i] == data[i] || got[i] == old[i], $"round {round}: byte {offset + i} is neither the old nor the new value");
                    }
                }

                foreach (var p in pending.Where(p => Read(r, payload + p.Offset, p.Data.Length).AsSpan().SequenceEqual(p.Data)))
                {
                    origin[p.Offset] = $"unflushed in round {round} but present after the crash";
                    acknowledged.Add(p);
                }

                pending.Clear();
            }

            Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", _plugin).StdOut, StringComparison.Ordinal);
            again.Stop();
            Assert.Equal(0, ExternalTool.Run("vhdiinfo", [Path.Combine(_vms, ".backupfuse", "disk.changes.vhdx")]).ExitCode);
        }

        Assert.True(acknowledged.Count > 20, $"only {acknowledged.Count} writes were acknowledged: the crash test did not exercise much");
        Assert.Equal(_imageHash, HashImages());
    }

    [Fact]
    public void ConcurrentWritersAndReadersOfOneAndOfTwoPluginsAreSafe()
    {
        string second = Path.Combine(_vms, "disk2.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(_images, "disk.bfi"), second);
        using var daemon = Mount();

        // A writer on each plugin (QEMU, each with its own patterns) while a reader streams each plugin whole: the
        // FUSE threads serve all four at once, and both plugins share the same backup chain.
        var results = new ToolResult[4];
        Parallel.Invoke(
            () => results[0] = QemuIoOn(_plugin, [.. Enumerable.Range(0, 40).Select(i => $"write -P 0x{0x10 + (i % 16):x2} {(i * 512L << 10) + 777} 70000")]),
            () => results[1] = QemuIoOn(second, [.. Enumerable.Range(0, 40).Select(i => $"write -P 0x{0x30 + (i % 16):x2} {(i * 512L << 10) + 1234} 65000")]),
            () => results[2] = ExternalTool.Run("dd", [$"if={_plugin}", "of=/dev/null", "bs=1M"]),
            () => results[3] = ExternalTool.Run("dd", [$"if={second}", "of=/dev/null", "bs=256k"]));
        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.Output));

        QemuIoOn(_plugin, [.. Enumerable.Range(0, 40).Select(i => $"read -P 0x{0x10 + (i % 16):x2} {(i * 512L << 10) + 777} 70000")], check: true);
        QemuIoOn(second, [.. Enumerable.Range(0, 40).Select(i => $"read -P 0x{0x30 + (i % 16):x2} {(i * 512L << 10) + 1234} 65000")], check: true);
        Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", second).StdOut, StringComparison.Ordinal);
        daemon.Stop();
        Assert.Equal(_imageHash, HashImages());
    }

    [Fact]
    public void ReadOnlyMountRefusesWrites()
    {
        using var daemon = Mount("--read-only");
        var r = ExternalTool.Run("qemu-io", ["-f", "vhdx", "-c", "write 0 4096", _plugin]);
        Assert.Contains("Read-only file system", r.Output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_vms, ".backupfuse")));
    }

    [Fact]
    public void VolatileChangesLeaveNothingBehind()
    {
        int tempDirsBefore = Directory.GetDirectories(Path.GetTempPath(), "backupfuse-volatile-*").Length;
        using (var daemon = Mount("--volatile"))
        {
            QemuIo("write -P 0x44 0 64K");
            QemuIo("read -P 0x44 0 64K");
            daemon.Stop();
        }

        Assert.False(Directory.Exists(Path.Combine(_vms, ".backupfuse")));
        Assert.Equal(tempDirsBefore, Directory.GetDirectories(Path.GetTempPath(), "backupfuse-volatile-*").Length);
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", _plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        }

        Assert.Equal(_imageHash, HashImages());
    }

    [Fact]
    public void ResetRestoresThePristineBackupAndExportFlattensTheChanges()
    {
        using (var daemon = Mount())
        {
            QemuIo("write -P 0x55 1M 2M", "write -P 0x66 30000 999");
            ExternalTool.Check("qemu-img", "convert", "-f", "vhdx", "-O", "raw", _plugin, _dir["guest.raw"]);

            // While the mount is up, export reads the plugin through it (a fixed VHDX with the changes).
            Cli.Ok("export", _plugin, _dir["through-mount.raw"]);
            Assert.True(TestDisks.SameContent(_dir["guest.raw"], _dir["through-mount.raw"]), "export through the mount differs from what QEMU reads");

            // A VM holding the disk open blocks reset.
            using (var open = File.OpenHandle(_plugin))
            {
                var refused = Cli.Run("reset", _plugin);
                Assert.Equal(1, refused.ExitCode);
                Assert.Contains("in use", refused.StdErr, StringComparison.Ordinal);
            }
        }

        // Unmounted: export flattens backup + changes from the plugin file itself.
        Cli.Ok("export", _plugin, _dir["flat.raw"], "--format", "raw");
        Assert.True(TestDisks.SameContent(_dir["guest.raw"], _dir["flat.raw"]), "export --format raw differs from the disk the guest last saw");
        Cli.Ok("export", _plugin, _dir["flat.vhdx"], "--format", "vhdx");
        Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", _dir["flat.vhdx"], _dir["guest.raw"]).StdOut, StringComparison.Ordinal);
        Assert.Contains("of the disk changed", Cli.Ok("info", _plugin).StdOut, StringComparison.Ordinal);

        Cli.Ok("reset", _plugin);
        Assert.Contains("none (reads as the backup point)", Cli.Ok("info", _plugin).StdOut, StringComparison.Ordinal);
        using (var daemon = Mount())
        {
            Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vhdx", "-F", "raw", _plugin, _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        }

        Assert.Equal(_imageHash, HashImages());
    }

    private DaemonProcess Mount(params string[] extra) => DaemonProcess.Start(_vms, [_vms, "--images", _images, .. extra]);

    private void QemuIo(params string[] commands) => QemuIoOn(_plugin, commands, check: true);

    private static ToolResult QemuIoOn(string plugin, string[] commands, bool check = false)
    {
        var args = new List<string> { "-f", "vhdx" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }

        args.Add(plugin);
        var r = ExternalTool.Run("qemu-io", args);
        bool ok = r.ExitCode == 0 && !r.Output.Contains("Pattern verification failed", StringComparison.Ordinal) && !r.Output.Contains("error", StringComparison.OrdinalIgnoreCase);
        if (check)
        {
            Assert.True(ok, $"qemu-io {string.Join(" | ", commands)}: {r.Output}");
        }

        return ok ? r : r with { ExitCode = r.ExitCode == 0 ? 1 : r.ExitCode };
    }

    private string HashImages() => string.Join(",", Directory.GetFiles(_images).Order(StringComparer.Ordinal).Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

    // fsync(2) itself: .NET's RandomAccess.FlushToDisk returns normally when fsync fails with ECONNABORTED (the
    // daemon died during the request), which would count an unacknowledged batch as durable.
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "fsync")]
    private static extern int NativeFsync(Microsoft.Win32.SafeHandles.SafeFileHandle fd);

    private static void Fsync(Microsoft.Win32.SafeHandles.SafeFileHandle h)
    {
        if (NativeFsync(h) != 0)
        {
            throw new IOException($"fsync failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }

    private static void ReadFully(Microsoft.Win32.SafeHandles.SafeFileHandle h, Span<byte> buffer, long offset)
    {
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(h, buffer, offset);
            Assert.True(n > 0, $"unexpected end of file at {offset}");
            buffer = buffer[n..];
            offset += n;
        }
    }

    private static byte[] Read(Microsoft.Win32.SafeHandles.SafeFileHandle h, long offset, int length)
    {
        var b = new byte[length];
        ReadFully(h, b, offset);
        return b;
    }
}
