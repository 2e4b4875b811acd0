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

/// <summary>Serilog set-up: logs go to standard error so standard output stays clean for data (export to -).</summary>
public static class Logging
{
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
                outputTemplate: "{Timestamp:HH:mm:ss} {Level:u3} {Message:lj}{NewLine}{Exception}",
                standardErrorFromLevel: LogEventLevel.Verbose);
        }

        if (!string.IsNullOrEmpty(logFile))
        {
            config = config.WriteTo.File(new JsonFormatter(renderMessage: true), logFile);
        }

        Log.Logger = config.CreateLogger();
    }
}
