using BackupFuse.Core;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Fuse;
using BackupFuse.Fuse.Overlay;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - Serves the disks of one boot-check run to QEMU as raw files: a private temporary directory (0700) holding one
//   empty placeholder per disk, mounted read-only over itself with the daemon's own FUSE file system
//   (DirectoryOverlayFileSystem) and a provider that presents each placeholder as its disk. The same read path as a
//   real mount (synthesized VHDX, changes overlay, cache), without a second process.
// - Read-only all the way: the mount is read-only (EROFS), the provider's sources cannot write, and QEMU boots a
//   qcow2 overlay over the served file (BootMachine). The backups and a plugin's changes file are only read.
// - The sources belong to the caller and must outlive the server (Dispose unmounts first).

/// <summary>A private, read-only FUSE mount presenting disks as raw files for QEMU.</summary>
public sealed class DiskServer : IDisposable
{
    private readonly DirectoryInfo _dir;
    private readonly DirectoryOverlayFileSystem _fs;
    private readonly FuseMount _mount;

    private DiskServer(DirectoryInfo dir, DirectoryOverlayFileSystem fs, FuseMount mount)
    {
        _dir = dir;
        _fs = fs;
        _mount = mount;
    }

    /// <summary>
    /// Mounts the disks, each under its key's name (a plain file name), and returns once the mount is live. The disk
    /// factories are called on every open and must return a new non-owning, read-only view.
    /// </summary>
    public static DiskServer Start(IReadOnlyDictionary<string, Func<IBlockSource>> disks)
    {
        ArgumentNullException.ThrowIfNull(disks);
        if (MountCapability.Problem() is { } problem)
        {
            throw new CliError(problem);
        }

        FuseLibrary.ThrowIfUnavailable();
        var dir = Directory.CreateTempSubdirectory("backupfuse-boot-disks-");
        try
        {
            foreach (string name in disks.Keys)
            {
                File.WriteAllBytes(Path.Combine(dir.FullName, name), []);
            }

            var fs = DirectoryOverlayFileSystem.Open(dir.FullName, new Provider(disks), readOnly: true);
            var mount = new FuseMount(new FuseMountOptions { MountPoint = dir.FullName, ReadOnly = true }, fs, new SerilogFuseLog());
            try
            {
                mount.Start();
                if (!mount.Mounted.Wait(TimeSpan.FromSeconds(30)))
                {
                    throw new IOException($"{dir.FullName}: the disk mount did not come up within 30 s");
                }
            }
            catch
            {
                mount.Dispose();
                fs.Dispose();
                throw;
            }

            return new DiskServer(dir, fs, mount);
        }
        catch
        {
            dir.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>The served file of the disk named <paramref name="name"/>.</summary>
    public string PathOf(string name) => Path.Combine(_dir.FullName, name);

    /// <summary>Unmounts (waiting for open files to close) and removes the directory.</summary>
    public void Dispose()
    {
        _mount.Dispose();
        _fs.Dispose();
        try
        {
            _dir.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Still covered by a mount that did not go away: leave the empty placeholders.
        }
    }

    private sealed class Provider(IReadOnlyDictionary<string, Func<IBlockSource>> disks) : IVirtualFileProvider
    {
        public VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
        {
            if (!disks.TryGetValue(relativePath, out var open))
            {
                return null;
            }

            using var disk = open();
            return new VirtualFileInfo(disk.Length, disk.Length, Writable: false);
        }

        public IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write) =>
            disks.TryGetValue(relativePath, out var open) ? open() : throw new IOException($"{relativePath}: not a served disk");
    }
}
