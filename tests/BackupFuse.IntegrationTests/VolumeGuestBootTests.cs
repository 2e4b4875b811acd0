using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 14 in a real guest: a plugin assembled from two ext4 volume backups, attached through the mount as the test
/// VM's second virtio disk. The guest kernel finds both partitions of the synthesized GPT, mounts both, reads a file
/// of each, writes a file and reads it back after a remount; the host then finds the write in the plugin's changes.
/// Boots a VM: run it under `flock /work/heavy.lock`.
/// </summary>
[Collection("mounts")]
public sealed class VolumeGuestBootTests : IDisposable
{
    private const long MiB = 1024 * 1024;
    private readonly TempDirectory _dir = new("bfvolboot");

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public void GuestMountsBothPartitionsOfAnAssembledPluginAndItsWriteSurvives()
    {
        Prerequisite.SkipIf(GuestBoot.Missing());
        Prerequisite.Tool("qemu-img", "qemu-utils");
        string images = _dir["images"], vms = _dir["vms"];
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(vms);
        for (int v = 1; v <= 2; v++)
        {
            string files = _dir[$"files{v}"];
            Directory.CreateDirectory(Path.Combine(files, "sub"));
            File.WriteAllText(Path.Combine(files, "sub", "f3.txt"), $"volume {v} file 3\n");
            ExternalTool.Check("truncate", "-s", $"{16 * v}M", _dir[$"v{v}.ext4"]);
            ExternalTool.Check("mkfs.ext4", "-q", "-F", "-d", files, _dir[$"v{v}.ext4"]);
            Cli.Ok("backup", _dir[$"v{v}.ext4"], Path.Combine(images, $"v{v}.bfi"), "--volume");
        }

        string plugin = Path.Combine(vms, "vols.vhdx");
        Cli.Ok("plugin", "create", "--volume", Path.Combine(images, "v1.bfi"), "--volume", Path.Combine(images, "v2.bfi"), plugin);
        string hashes = GuestBoot.HashDir(images);

        // The boot disk, with a hook the guest's init runs before powering off.
        string boot = _dir["boot.raw"];
        GuestBoot.Script("guest/make-boot-disk.sh", [boot, "128"]);
        const string hook = """
            mkdir -p /mnt/a /mnt/b
            for p in $(grep -o 'vdb[0-9]*$' /proc/partitions); do echo "VOLGUEST-PART:$p"; done
            mount -t ext4 /dev/vdb1 /mnt/a && echo "VOLGUEST-A:$(head -n 1 /mnt/a/sub/f3.txt)"
            mount -t ext4 /dev/vdb2 /mnt/b && echo "VOLGUEST-B:$(head -n 1 /mnt/b/sub/f3.txt)"
            echo guest-wrote-this > /mnt/b/written.txt && sync && umount /mnt/b
            mount -t ext4 /dev/vdb2 /mnt/b && echo "VOLGUEST-REMOUNT:$(cat /mnt/b/written.txt)"
            umount /mnt/b; umount /mnt/a
            """;
        using (var daemon = DaemonProcess.Start(vms, [vms, "--images", images]))
        {
            string console = GuestBoot.BootWithHook(boot, hook, $"file={plugin},format=vhdx,if=virtio", _dir.Path, daemon.Log);
            Assert.Contains("VOLGUEST-PART:vdb1", console, StringComparison.Ordinal);
            Assert.Contains("VOLGUEST-PART:vdb2", console, StringComparison.Ordinal);
            Assert.DoesNotContain("VOLGUEST-PART:vdb3", console, StringComparison.Ordinal);
            Assert.Contains("VOLGUEST-A:volume 1 file 3", console, StringComparison.Ordinal);
            Assert.Contains("VOLGUEST-B:volume 2 file 3", console, StringComparison.Ordinal);
            Assert.Contains("VOLGUEST-REMOUNT:guest-wrote-this", console, StringComparison.Ordinal);
        }

        // After the VM, on a new mount: the write is in the plugin's changes, the backups are unchanged.
        using (var daemon = DaemonProcess.Start(vms, [vms, "--images", images]))
        {
            string part2 = _dir["part2.ext4"];
            ExternalTool.Check("qemu-img", "convert", "--image-opts",
                $"driver=raw,offset={17 * MiB},size={32 * MiB},file.driver=vhdx,file.file.filename={plugin}", "-O", "raw", part2);
            Assert.Equal("guest-wrote-this\n", ExternalTool.Check("debugfs", "-R", "cat /written.txt", part2).StdOut);
        }

        Assert.Equal(hashes, GuestBoot.HashDir(images));
    }
}
