using System.CommandLine;
using BackupFuse.Daemon.Cli;

namespace BackupFuse.Daemon.Commands;

/// <summary>The whole command tree of <c>backupfuse</c>.</summary>
public static class CommandLineTree
{
    /// <summary>Builds the root command with every subcommand and the global options.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand(
            "BackupFuse: use block-level backups as VHDX disks without restoring them.\n\n" +
            "Typical flow:\n" +
            "  backupfuse backup /dev/sdb /backups/web01-full.bfi\n" +
            "  backupfuse backup /dev/sdb /backups/web01-1122.bfi --parent /backups/web01-full.bfi\n" +
            "  backupfuse plugin create /backups/web01-1122.bfi /vms/web01.vhdx\n" +
            "  backupfuse mount /vms --images /backups\n" +
            "  qemu-system-x86_64 -m 2G -drive file=/vms/web01.vhdx,format=vhdx,if=virtio");
        root.Options.Add(GlobalOptions.Verbose);
        root.Options.Add(GlobalOptions.LogFormat);
        root.Options.Add(GlobalOptions.LogFile);
        root.Options.Add(RemoteOptions.S3Endpoint);
        root.Options.Add(RemoteOptions.S3PathStyle);
        root.Options.Add(RemoteOptions.CacheDir);
        root.Options.Add(RemoteOptions.CacheDirSize);
        foreach (var command in Commands())
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    private static IEnumerable<Command> Commands()
    {
        yield return BackupCommand.Create();
        yield return InfoCommand.Create();
        yield return VerifyCommand.Create();
        yield return ExportCommand.Create();
        yield return PluginCommand.Create();
        yield return ResetCommand.Create();
        yield return CommitCommand.Create();
        yield return MergeCommand.Create();
        yield return PruneCommand.Create();
        yield return MountCommand.Create();
        yield return BootCheckCommand.Create();
        yield return StatusCommand.CreateStatus();
        yield return StatusCommand.CreateUnmount();
    }

    /// <summary>Wraps a command body: exceptions become one message and exit code 1.</summary>
    public static void SetGuardedAction(this Command command, Func<ParseResult, CancellationToken, int> body)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.SetAction((parse, token) =>
        {
            try
            {
                return Task.FromResult(body(parse, token));
            }
            catch (Exception e)
            {
                return Task.FromResult(ErrorReporter.Report(e));
            }
        });
    }
}
