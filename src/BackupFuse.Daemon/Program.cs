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
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return ErrorReporter.Report(e);
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }
}
