using System.Security.Cryptography;
using Serilog;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// Turns an exception that reached the top of a command into one clear line on standard error and an exit code.
/// Expected failures (bad input, host I/O, refused access) print their message only; anything else is a bug and
/// also logs the stack trace at debug level.
/// </summary>
public static class ErrorReporter
{
    /// <summary>Prints the error and returns the exit code for it.</summary>
    public static int Report(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e is AggregateException { InnerExceptions.Count: 1 } agg)
        {
            e = agg.InnerExceptions[0];
        }

        switch (e)
        {
            case CliError or InvalidDataException or IOException or UnauthorizedAccessException or CryptographicException or NotSupportedException or PlatformNotSupportedException:
                Console.Error.WriteLine($"error: {e.Message}");
                Log.Debug(e, "command failed");
                return ExitCodes.Error;
            case OperationCanceledException:
                Console.Error.WriteLine("error: cancelled");
                return ExitCodes.Error;
            default:
                Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message} (run with -v for details)");
                Log.Debug(e, "unexpected failure");
                return ExitCodes.Error;
        }
    }
}
