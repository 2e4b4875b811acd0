using System.CommandLine;
using BackupFuse.Core;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Vhdx;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse export</c>: the full disk of a backup point, with or without a VM's changes, as a standalone file.</summary>
public static class ExportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("image") { Description = "A backup image (.bfi), a plugin file (its changes included), or a VHDX (e.g. a plugin seen through the mount)." };
        var output = new Argument<string>("out") { Description = "File to write (must not exist), or - for standard output." };
        var format = new Option<string>("--format")
        {
            Description = "raw: the plain disk; vhdx: a standalone fixed VHDX; qcow2: a standalone qcow2 (only non-zero clusters stored; a file, not -).",
            DefaultValueFactory = _ => "raw",
        };
        format.Validators.Add(r =>
        {
            // One line naming the valid values (AcceptOnlyFromAmong lists them over several lines).
            string? value = r.GetValueOrDefault<string>();
            if (value is not ("raw" or "vhdx" or "qcow2"))
            {
                r.AddError($"--format {value}: unknown format; valid formats: raw, vhdx, qcow2");
            }
        });
        var images = ImagesOption.Create();
        var passphrase = new PassphraseOptions();
        var command = new Command("export",
            "Write the full disk of a backup point to a standalone file (zero areas stay holes). For a plugin, the changes\n" +
            "VMs made are included (backup + changes, flattened, as the VM saw it); refused while a process (a\n" +
            "running VM) has the disk open for writing. QEMU tools (qemu-img, libguestfs, Proxmox) cannot open the differencing\n" +
            "VHDX in .backupfuse/; an export (qcow2, raw or vhdx) is the disk they can.\n\n" +
            "Examples:\n  backupfuse export /backups/web01-1122.bfi /tmp/web01.raw\n  backupfuse export /vms/web01.vhdx /tmp/web01-now.vhdx --format vhdx --images /backups\n" +
            "  backupfuse export /vms/web01.vhdx /tmp/web01-now.qcow2 --format qcow2 --images /backups");
        command.Arguments.Add(target);
        command.Arguments.Add(output);
        command.Options.Add(format);
        command.Options.Add(images);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            string path = parse.GetValue(target)!;
            var point = BackupPointResolver.Resolve(path);
            string kind = parse.GetValue(format)!;
            bool asVhdx = kind == "vhdx";
            string outPath = parse.GetValue(output)!;
            if (kind == "qcow2" && outPath == "-")
            {
                throw new CliError(Qcow2Writer.StandardOutputRefused);
            }

            if (point.IsVhdx)
            {
                // A VHDX (or a plugin seen through its mount) that another process writes to would be copied torn.
                RefuseWriters(path, OpenFileScanner.Users(path).Where(u => u.Writing).ToList(), hint: string.Empty);
                using var file = new FileBlockSource(path);
                using var disk = VhdxReader.Open(file, path);
                Write(asVhdx ? new SynthesizedVhdx(disk, Guid.NewGuid(), ownsDisk: false) : disk, outPath, kind, asVhdx, token);
                return ExitCodes.Ok;
            }

            var pointDisk = BackupPointResolver.OpenPoint(point, parse, images, passphrase.Resolve(parse));
            var chain = pointDisk.Primary;
            ChangesLocation? changes = null;
            if (point.PluginPath != null)
            {
                changes = ChangesLocation.ForPlugin(Path.GetFullPath(point.PluginPath));
                var users = OpenFileScanner.Users(point.PluginPath).Where(u => u.Writing).Concat(changes.Exists ? OpenFileScanner.Users(changes.ChangesFile) : []).ToList();
                if (users.Count > 0)
                {
                    pointDisk.Dispose();
                    RefuseWriters(point.PluginPath, users, hint: " (or export the VHDX through the mount)");
                }
            }

            if (!asVhdx && (changes == null || !changes.Exists) && !BackupFuse.BackupImage.Files.FileImageFields.IsFileImage(chain.Top.Header) &&
                (point.PluginPath == null || (chain.DiskSize % 512 == 0 && pointDisk.Shape.Partitions == null)))
            {
                // The plain disk straight from the chain: no VHDX layout is built, so a disk beyond VHDX's 64 TiB exports too.
                // (A plugin of a disk that ends mid-sector goes through the stack: its guests saw it rounded up. A file-level
                // image too: its chain is a data stream and a catalog, the disk is the synthesized file system around them.)
                using (pointDisk)
                using (var raw = chain.CreateSource())
                {
                    Write(raw, outPath, kind, ownsSource: false, token);
                }

                return ExitCodes.Ok;
            }

            using var stack = BackupPointStack.Open(pointDisk, point.Plugin ?? new PluginFile(1, chain.Top.Path, chain.Top.Id), changes, create: false);
            // A disk with changes is a new disk: it gets a new identity. The backup point alone keeps its own. A plugin
            // exports the disk its guests saw (rounded up to whole sectors, with what they wrote there); an image, its disk.
            var exported = point.PluginPath != null ? stack.GuestDisk : stack.Disk;
            var source = asVhdx ? new SynthesizedVhdx(exported, stack.Changes == null ? stack.Point.Identity : Guid.NewGuid(), ownsDisk: false) : exported;
            Write(source, outPath, kind, asVhdx, token);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void RefuseWriters(string path, IReadOnlyList<FileUser> users, string hint)
    {
        if (users.Count > 0)
        {
            throw new CliError($"{path} is in use by {OpenFileScanner.Describe(users)}; stop the VM first{hint}");
        }
    }

    private static void Write(IBlockSource source, string outPath, string format, bool ownsSource, CancellationToken token)
    {
        try
        {
            using (var bar = new ProgressBar("export"))
            {
                if (format == "qcow2")
                {
                    Qcow2Writer.WriteFile(source, outPath, bar, token);
                }
                else
                {
                    SparseCopy.Copy(source, outPath, bar, token);
                }
            }

            Console.Error.WriteLine($"exported {Bytes.Format(source.Length)} to {outPath}");
        }
        finally
        {
            if (ownsSource)
            {
                source.Dispose();
            }
        }
    }
}
