using System.CommandLine;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse plugin create</c>: write a plugin file pointing at a backup point.</summary>
public static class PluginCommand
{
    /// <summary>Builds the command group.</summary>
    public static Command Create()
    {
        var paths = new Argument<string[]>("image plugin")
        {
            Description = "The backup image (.bfi) the plugin stands for (omitted with --volume), then the plugin file to write, in the directory you will mount; " +
                "its extension chooses the format the disk is shown in: .vhdx, .vhd (fixed), .vmdk (single-file sparse), .img or .raw (the raw disk).",
            Arity = new ArgumentArity(1, 2),
        };
        var volumes = new Option<string[]>("--volume")
        {
            Description = "A volume image (backed up from a partition, an LV or with backup --volume); repeat to assemble several volumes, in order, into one disk " +
                "(partition 1, 2, ... each at a 1 MiB boundary). Each volume keeps its own chain.",
            AllowMultipleArgumentsPerToken = false,
        };
        var partitionType = new Option<string?>("--partition-type") { Description = "GPT partition type GUID of the volume partitions (default: from the file system: Linux filesystem data, or Microsoft basic data for NTFS/FAT/exFAT)." };
        var fileSystem = new Option<string?>("--filesystem")
        {
            Description = "For a file-level image (backup --files): the file system its files are presented in: exfat (default; no file size limit) " +
                "or fat32 (for old guests and firmware; files must be under 4 GiB).",
        };
        fileSystem.AcceptOnlyFromAmong("exfat", "fat32");
        var mbr = new Option<bool>("--mbr") { Description = "Synthesize a classic MBR instead of GPT (at most 4 volumes, disk up to 2 TiB), for guests that want one." };
        var imageRoots = ImagesOption.Create();
        var force = new Option<bool>("--force") { Description = "Replace an existing plugin file (never a file that is not a plugin)." };
        var passphrase = new PassphraseOptions();
        var create = new Command("create",
            "Write a small plugin file that, under 'backupfuse mount', reads as the complete disk of a backup point, in the\n" +
            "format its extension names: .vhdx (VHDX), .vhd (fixed VHD), .vmdk (single-file sparse VMDK), .img or .raw (raw).\n" +
            "The image and its chain are checked first.\n\n" +
            "A volume image (a partition, an LV, a file-system image) reads as a disk with a synthesized partition table\n" +
            "(protective MBR and GPT, the volume as partition 1 at 1 MiB), and --volume assembles several into one disk.\n" +
            "A file-level image (backup --files) reads as such a disk whose partition holds a synthesized exFAT (or, with\n" +
            "--filesystem fat32, FAT32) file system with the backed-up files; names it cannot hold are mapped and listed.\n\n" +
            "Examples:\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.vhdx\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.img\n" +
            "  backupfuse plugin create --volume /backups/sda1.bfi --volume /backups/sda2.bfi /vms/sda.vhdx");
        create.Arguments.Add(paths);
        create.Options.Add(volumes);
        create.Options.Add(partitionType);
        create.Options.Add(mbr);
        create.Options.Add(fileSystem);
        create.Validators.Add(r =>
        {
            int count = r.GetValue(paths)?.Length ?? 0;
            if ((r.GetValue(volumes)?.Length ?? 0) > 0 ? count != 1 : count != 2)
            {
                r.AddError((r.GetValue(volumes)?.Length ?? 0) > 0
                    ? "with --volume, give only the plugin file to write (the images are the --volume options)"
                    : "give the backup image and the plugin file to write (or --volume IMAGE ... and the plugin file)");
            }

            if (r.GetValue(partitionType) is { } type && !Guid.TryParse(type, out _))
            {
                r.AddError($"--partition-type {type}: not a GUID (e.g. 0FC63DAF-8483-4772-8E79-3D69D8477DE4)");
            }
        });
        create.Options.Add(imageRoots);
        create.Options.Add(force);
        passphrase.AddTo(create);
        create.SetGuardedAction((parse, _) =>
        {
            string[] given = parse.GetValue(paths)!;
            string[] volumeImages = parse.GetValue(volumes) ?? [];
            Guid? typeOverride = parse.GetValue(partitionType) is { } typeText ? Guid.Parse(typeText) : null;
            var images = volumeImages.Length > 0 ? volumeImages : [given[0]];
            images = [.. images.Select(i => BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(i) ? BackupPointResolver.Resolve(i).ImagePath : Path.GetFullPath(i))];
            string imagePath = images[0];
            string pluginPath = Path.GetFullPath(given[^1]);
            if (PluginFormats.FromPath(pluginPath) == null)
            {
                throw new CliError($"{pluginPath}: a plugin file must end in {PluginFormats.ExtensionList} (the extension chooses the disk format the mount shows)");
            }

            if (File.Exists(pluginPath))
            {
                bool isPlugin = BackupPointResolver.Resolve(pluginPath).Plugin != null;
                if (!isPlugin)
                {
                    throw new CliError($"{pluginPath} exists and is not a plugin file; refusing to overwrite it");
                }

                if (!parse.GetValue(force))
                {
                    throw new CliError($"{pluginPath} exists; use --force to replace the plugin");
                }
            }

            var pass = passphrase.Resolve(parse);
            var chains = new List<BackupFuse.BackupImage.Reading.BackupChain>();
            try
            {
                foreach (string i in images)
                {
                    chains.Add(BackupPointResolver.OpenChain(new BackupPoint(i, null, null), parse, imageRoots, pass));
                }

                bool anyFiles = chains.Any(c => BackupFuse.BackupImage.Files.FileImageFields.IsFileImage(c.Top.Header));
                if (parse.GetValue(fileSystem) != null && !anyFiles)
                {
                    throw new CliError($"--filesystem applies to file-level images (backup --files); {imagePath} holds blocks");
                }

                bool volumeDisk = volumeImages.Length > 0 || chains[0].Top.Header.IsVolume || anyFiles;
                if (!volumeDisk && (typeOverride != null || parse.GetValue(mbr)))
                {
                    throw new CliError($"--partition-type and --mbr apply to volume images; {imagePath} holds a whole disk");
                }

                var file = new PluginFile(PluginFile.CurrentVersion, imagePath, chains[0].Top.Id)
                {
                    MoreImages = [.. chains.Skip(1).Select((c, k) => new PluginImage(images[k + 1], c.Top.Id))],
                    PartitionTable = parse.GetValue(mbr) ? BackupFuse.Core.Partitions.PartitionTableKind.Mbr : null,
                    PartitionType = typeOverride,
                    FileSystem = parse.GetValue(fileSystem) switch
                    {
                        "exfat" => BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.ExFat,
                        "fat32" => BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.Fat32,
                        _ => null,
                    },
                };
                DiskShape shape;
                int mapped;
                try
                {
                    // This lays out any file-level volume: FAT32's refusals and the name mappings show now.
                    shape = BackupPointDisk.ShapeOf(chains, file, out mapped);
                }
                catch (Exception e) when (e is InvalidDataException or IOException)
                {
                    throw new CliError($"{pluginPath}: {e.Message}");
                }

                file.Save(pluginPath);
                string what = shape.Partitions == null
                    ? $"disk {Bytes.Format(chains[0].DiskSize)}"
                    : $"disk {Bytes.Format(shape.DiskSize)} with {chains.Count} partition(s) ({(file.PartitionTable == BackupFuse.Core.Partitions.PartitionTableKind.Mbr ? "MBR" : "GPT")}): " +
                        string.Join(", ", chains.Select((c, k) => $"{FileSystemName(c, file)} {Bytes.Format(shape.Partitions.PartitionLengths[k])} at {shape.Partitions.PartitionOffsets[k]}"));
                Console.Error.WriteLine($"{pluginPath} -> {string.Join(" + ", images)} ({chains[0].Top.Id}, chain of {chains[0].Layers.Count}, {what})");
                if (mapped > 0)
                {
                    Console.Error.WriteLine($"{mapped} name(s) the file system cannot hold are stored under other names or left out; 'backupfuse info {pluginPath} --json' lists them");
                }
            }
            finally
            {
                foreach (var c in chains)
                {
                    c.Dispose();
                }
            }

            return ExitCodes.Ok;
        });
        var group = new Command("plugin", "Manage plugin files (small *.vhdx/.vhd/.vmdk/.img/.raw pointers to backup points).\n\nExample:\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.vhdx");
        group.Subcommands.Add(create);
        return group;
    }

    private static string FileSystemName(BackupFuse.BackupImage.Reading.BackupChain chain, PluginFile plugin) =>
        !BackupFuse.BackupImage.Files.FileImageFields.IsFileImage(chain.Top.Header)
            ? BackupFuse.BackupImage.Volumes.FileSystemProbe.Describe(chain.Top.Header.FileSystem)
            : plugin.FileSystem == BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.Fat32 ? "files as FAT32" : "files as exFAT";
}
