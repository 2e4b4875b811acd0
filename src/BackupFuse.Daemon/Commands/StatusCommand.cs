using System.CommandLine;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse status</c> and <c>backupfuse unmount</c>.</summary>
public static class StatusCommand
{
    /// <summary>Lists BackupFuse mounts.</summary>
    public static Command CreateStatus()
    {
        var command = new Command("status",
            "List the BackupFuse mounts of this machine, each with its cache figures (remote cache hit rate, bytes fetched,\n" +
            "memory cache use) as its daemon last published them (every 5 s).\n\nExample:\n  backupfuse status");
        command.SetGuardedAction((_, _) =>
        {
            var mounts = MountTable.List();
            if (mounts.Count == 0)
            {
                Console.WriteLine("no BackupFuse mounts");
            }

            foreach (var m in mounts)
            {
                Console.WriteLine($"{m.MountPoint}\t{m.Options}");
                foreach (string line in MountStatistics.Describe(MountStatistics.TryRead(m.MountPoint)))
                {
                    Console.WriteLine(line); // cache hit rate and bytes fetched, as the mount's daemon last published them
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Unmounts a BackupFuse mount.</summary>
    public static Command CreateUnmount()
    {
        var dir = new Argument<string>("mountpoint") { Description = "Where the mount is (the directory given to 'mount', or its --at)." };
        var command = new Command("unmount",
            "Unmount a BackupFuse mount. Files still open (a running VM's disk) keep being served until closed.\n\n" +
            "Example:\n  backupfuse unmount /vms");
        command.Arguments.Add(dir);
        command.SetGuardedAction((parse, _) =>
        {
            string mountPoint = Path.GetFullPath(parse.GetValue(dir)!);
            if (!MountTable.IsMounted(mountPoint))
            {
                throw new CliError($"{mountPoint}: no BackupFuse mount there (see 'backupfuse status')");
            }

            var psi = new System.Diagnostics.ProcessStartInfo("fusermount3") { UseShellExecute = false };
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add("-z");
            psi.ArgumentList.Add(mountPoint);
            using var p = System.Diagnostics.Process.Start(psi) ?? throw new CliError("cannot run fusermount3 (package fuse3)");
            p.WaitForExit();
            return p.ExitCode == 0 ? ExitCodes.Ok : throw new CliError($"fusermount3 -u {mountPoint} failed with exit code {p.ExitCode}");
        });
        return command;
    }
}
