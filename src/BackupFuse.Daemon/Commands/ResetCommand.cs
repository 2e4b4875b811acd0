using System.CommandLine;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse reset</c>: drop the changes of one disk.</summary>
public static class ResetCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var plugin = new Argument<string>("plugin") { Description = "The plugin file (*.vhdx) whose changes to drop; mounted or not." };
        var command = new Command("reset",
            "Drop everything VMs wrote to one disk: the plugin reads as the pristine backup point again. Refused while\n" +
            "the disk is open (a running VM). The backup itself was never modified.\n\n" +
            "Example:\n  backupfuse reset /vms/web01.vhdx");
        command.Arguments.Add(plugin);
        command.SetGuardedAction((parse, _) =>
        {
            string pluginPath = Path.GetFullPath(parse.GetValue(plugin)!);
            var point = BackupPointResolver.Resolve(pluginPath);
            // A plugin reads as its disk (VHDX, raw, VHD, VMDK) through its mount; anything else has no changes to drop.
            if (point.Plugin == null && !((point.IsVhdx || PluginFormats.FromPath(pluginPath) != null) && IsInMount(pluginPath)))
            {
                throw new CliError($"{pluginPath}: not a plugin file; nothing to reset");
            }

            var changes = ChangesLocation.ForPlugin(pluginPath);
            if (!changes.Exists)
            {
                Console.Error.WriteLine($"{pluginPath}: no changes to drop");
                return ExitCodes.Ok;
            }

            var users = OpenFileScanner.Users(pluginPath, changes.ChangesFile);
            if (users.Count > 0)
            {
                throw new CliError($"{pluginPath} is in use by {OpenFileScanner.Describe(users)}; stop the VM first");
            }

            long size = Math.Max(0, changes.Delete());
            Console.Error.WriteLine($"{pluginPath}: dropped the changes ({Bytes.Format(size)} differencing file)");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static bool IsInMount(string path)
    {
        string real = ImageRoots.RealPath(path) ?? path;
        return MountTable.List().Any(m => real.StartsWith(m.MountPoint.TrimEnd('/') + "/", StringComparison.Ordinal));
    }
}
