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
        var image = new Argument<string>("image") { Description = "The backup image (.bfi) the plugin stands for." };
        var plugin = new Argument<string>("plugin") { Description = "The plugin file to write, in the directory you will mount; its extension chooses the format the disk is shown in: .vhdx, .vhd (fixed), .vmdk (single-file sparse), .img or .raw (the raw disk)." };
        var images = ImagesOption.Create();
        var force = new Option<bool>("--force") { Description = "Replace an existing plugin file (never a file that is not a plugin)." };
        var passphrase = new PassphraseOptions();
        var create = new Command("create",
            "Write a small plugin file that, under 'backupfuse mount', reads as the complete disk of a backup point, in the\n" +
            "format its extension names: .vhdx (VHDX), .vhd (fixed VHD), .vmdk (single-file sparse VMDK), .img or .raw (raw).\n" +
            "The image and its chain are checked first.\n\n" +
            "Examples:\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.vhdx\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.img");
        create.Arguments.Add(image);
        create.Arguments.Add(plugin);
        create.Options.Add(images);
        create.Options.Add(force);
        passphrase.AddTo(create);
        create.SetGuardedAction((parse, _) =>
        {
            string imagePath = parse.GetValue(image)!;
            imagePath = BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(imagePath) ? BackupPointResolver.Resolve(imagePath).ImagePath : Path.GetFullPath(imagePath);
            string pluginPath = Path.GetFullPath(parse.GetValue(plugin)!);
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

            var point = new BackupPoint(imagePath, null, null);
            using var chain = BackupPointResolver.OpenChain(point, parse, images, passphrase.Resolve(parse));
            new PluginFile(PluginFile.CurrentVersion, imagePath, chain.Top.Id).Save(pluginPath);
            Console.Error.WriteLine($"{pluginPath} -> {imagePath} ({chain.Top.Id}, chain of {chain.Layers.Count}, disk {Bytes.Format(chain.DiskSize)})");
            return ExitCodes.Ok;
        });
        var group = new Command("plugin", "Manage plugin files (small *.vhdx/.vhd/.vmdk/.img/.raw pointers to backup points).\n\nExample:\n  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.vhdx");
        group.Subcommands.Add(create);
        return group;
    }
}
