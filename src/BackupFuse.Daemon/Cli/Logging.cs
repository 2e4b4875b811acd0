using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Json;

namespace BackupFuse.Daemon.Cli;

/// <summary>Log output format chosen with <c>--log-format</c>.</summary>
public enum LogFormat
{
    /// <summary>Human-readable lines (the default).</summary>
    Text,

    /// <summary>One JSON object per line, for machines.</summary>
    Json,
}

/// <summary>
/// Serilog set-up: logs go to standard error so standard output stays clean for data (export to -). The text format
/// shows an exception's stack trace only with -v (a user sees one line per problem); the log file (JSON lines,
/// bounded in size, opened without following symlinks: see <see cref="LogFiles"/>) always keeps it.
/// </summary>
public static class Logging
{
    /// <summary>Size at which a log file rolls over to <c>.1</c> (so at most twice this is kept per file).</summary>
    public const long FileSizeLimitBytes = 10L << 20;

    /// <summary>Configures the global logger.</summary>
    public static void Configure(LogFormat format, bool verbose, string? logFile)
    {
        var level = new LoggingLevelSwitch(verbose ? LogEventLevel.Debug : LogEventLevel.Information);
        var config = new LoggerConfiguration().MinimumLevel.ControlledBy(level);
        if (format == LogFormat.Json)
        {
            config = config.WriteTo.Console(new JsonFormatter(renderMessage: true), standardErrorFromLevel: LogEventLevel.Verbose);
        }
        else
        {
            config = config.WriteTo.Console(
                outputTemplate: "{Timestamp:HH:mm:ss} {Level:u3} {Message:lj}{NewLine}" + (verbose ? "{Exception}" : string.Empty),
                standardErrorFromLevel: LogEventLevel.Verbose);
        }

        if (!string.IsNullOrEmpty(logFile))
        {
            config = config.WriteTo.Sink(new BoundedLogFileSink(logFile, InDefaultDirectory(logFile), FileSizeLimitBytes, new JsonFormatter(renderMessage: true)));
        }

        Log.Logger = config.CreateLogger();
    }

    /// <summary>Files in the default log directory (where the background daemon logs) get its ownership checks.</summary>
    private static bool InDefaultDirectory(string logFile)
    {
        try
        {
            return Path.GetDirectoryName(Path.GetFullPath(logFile)) == LogFiles.DefaultDirectory();
        }
        catch (CliError)
        {
            return false;
        }
    }
}
