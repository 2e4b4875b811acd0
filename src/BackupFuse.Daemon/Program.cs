using System.CommandLine;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Commands;
using Serilog;

namespace BackupFuse.Daemon;

/// <summary>The <c>backupfuse</c> executable: one command tree, one error policy, one logging set-up.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var root = CommandLineTree.Build();
        VersionInfo.InstallOn(root);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                Console.Error.WriteLine($"error: {error.Message}");
            }

            Console.Error.WriteLine("Run 'backupfuse --help' (or 'backupfuse <command> --help') for usage.");
            return ExitCodes.Usage;
        }

        try
        {
            Logging.Configure(parse.GetValue(GlobalOptions.LogFormat), parse.GetValue(GlobalOptions.Verbose), parse.GetValue(GlobalOptions.LogFile));
            if (RunsMount(parse) && VersionInfo.MountProblem() is { } problem)
            {
                // Before any image is opened or the daemon forks: say what to install instead of failing later.
                Console.Error.WriteLine($"error: {problem}");
                return ExitCodes.Error;
            }

            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return ErrorReporter.Report(e);
        }
        finally
        {
            RemoteOptions.CloseCache(); // the persistent cache's index, when a remote image was read
            Log.CloseAndFlush();
        }
    }

    /// <summary>True when the command line runs <c>mount</c> itself (not <c>mount --help</c>).</summary>
    private static bool RunsMount(ParseResult parse) =>
        parse.CommandResult.Command.Name == "mount" && parse.Action == parse.CommandResult.Command.Action;
}
