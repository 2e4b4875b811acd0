using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 13 in a real guest: the incremental of a file-level backup, presented as an exFAT disk through the mount, is
/// the test VM's second virtio disk. The guest's own exfat driver mounts it, reads a file that exists only in the
/// incremental, writes a file and reads it back after a remount; after the VM, on a new mount of the daemon, a second
/// boot of the guest sees that write, and the host finds it with another exFAT implementation (exfat-fuse) and
/// fsck.exfat finds the guest-changed file system clean. Boots a VM twice: run it under `flock /work/heavy.lock`.
/// </summary>
[Collection("mounts")]
public sealed class FileLevelGuestBootTests : IDisposable
{
    private readonly TempDirectory _dir = new("bffileboot");

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public void GuestMountsTheExFatDiskOfAnIncrementalAndItsWriteSurvives()
    {
        Prerequisite.SkipIf(GuestBoot.Missing());
        Prerequisite.Tool("qemu-img", "qemu-utils");
        Prerequisite.Tool("fsck.exfat", "exfatprogs");
        Prerequisite.Tool("mount.exfat-fuse", "exfat-fuse");
        string images = _dir["images"], vms = _dir["vms"], src = _dir["src"];
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(vms);
        Directory.CreateDirectory(Path.Combine(src, "sub"));
        File.WriteAllText(Path.Combine(src, "sub", "old.txt"), "in the full backup\n");
        Cli.Ok("backup", "--files", src, Path.Combine(images, "full.bfi"));
        File.WriteAllText(Path.Combine(src, "sub", "new.txt"), "only in the incremental\n");
        Cli.Ok("backup", "--files", src, Path.Combine(images, "inc.bfi"), "--parent", Path.Combine(images, "full.bfi"));
        string plugin = Path.Combine(vms, "files.vhdx");
        Cli.Ok("plugin", "create", Path.Combine(images, "inc.bfi"), plugin);
        string hashes = GuestBoot.HashDir(images);

        string boot = _dir["boot.raw"];
        GuestBoot.Script("guest/make-boot-disk.sh", [boot, "128"]);
        const string hook = """
            mkdir -p /mnt/f
            mount -t exfat /dev/vdb1 /mnt/f && echo "FILEGUEST-NEW:$(cat /mnt/f/sub/new.txt)"
            echo "FILEGUEST-OLD:$(cat /mnt/f/sub/old.txt)"
            echo guest-wrote-this > /mnt/f/written.txt && sync && umount /mnt/f
            mount -t exfat /dev/vdb1 /mnt/f && echo "FILEGUEST-REMOUNT:$(cat /mnt/f/written.txt)"
            umount /mnt/f
            """;
        using (var daemon = DaemonProcess.Start(vms, [vms, "--images", images]))
        {
            string console = GuestBoot.BootWithHook(boot, hook, $"file={plugin},format=vhdx,if=virtio", _dir.Path, daemon.Log);
            Assert.Contains("FILEGUEST-NEW:only in the incremental", console, StringComparison.Ordinal);
            Assert.Contains("FILEGUEST-OLD:in the full backup", console, StringComparison.Ordinal);
            Assert.Contains("FILEGUEST-REMOUNT:guest-wrote-this", console, StringComparison.Ordinal);
        }

        // After the VM, on a new mount: a second boot sees the guest's write (kept in the plugin's changes), the file
        // system checks clean and another exFAT implementation reads the write too.
        using (var daemon = DaemonProcess.Start(vms, [vms, "--images", images]))
        {
            const string secondHook = """
                mkdir -p /mnt/f
                mount -t exfat -o ro /dev/vdb1 /mnt/f && echo "FILEGUEST-SECOND:$(cat /mnt/f/written.txt)"
                echo "FILEGUEST-SECOND-NEW:$(cat /mnt/f/sub/new.txt)"
                umount /mnt/f
                """;
            string second = GuestBoot.BootWithHook(boot, secondHook, $"file={plugin},format=vhdx,if=virtio,readonly=on", _dir.Path, daemon.Log);
            Assert.Contains("FILEGUEST-SECOND:guest-wrote-this", second, StringComparison.Ordinal);
            Assert.Contains("FILEGUEST-SECOND-NEW:only in the incremental", second, StringComparison.Ordinal);
            Assert.DoesNotContain("FILEGUEST-NEW:", second, StringComparison.Ordinal); // the first boot's hook was replaced

            string part = _dir["part.exfat"];
            ExternalTool.Check("qemu-img", "convert", "--image-opts",
                $"driver=raw,offset={1024 * 1024},file.driver=vhdx,file.file.filename={plugin}", "-O", "raw", part);
            var fsck = ExternalTool.Run("fsck.exfat", ["-n", part]);
            Assert.True(fsck.ExitCode == 0, fsck.Output);
            string mnt = _dir["mnt"];
            Directory.CreateDirectory(mnt);
            string loop = ExternalTool.Check("losetup", "-r", "-f", "--show", part).StdOut.Trim();
            try
            {
                ExternalTool.Check("mount.exfat-fuse", "-o", "ro", loop, mnt);
                try
                {
                    Assert.Equal("guest-wrote-this\n", File.ReadAllText(Path.Combine(mnt, "written.txt")));
                    Assert.Equal("only in the incremental\n", File.ReadAllText(Path.Combine(mnt, "sub", "new.txt")));
                }
                finally
                {
                    ExternalTool.Run("umount", [mnt]);
                }
            }
            finally
            {
                ExternalTool.Run("losetup", ["-d", loop]);
            }
        }

        Assert.Equal(hashes, GuestBoot.HashDir(images));
    }
}
