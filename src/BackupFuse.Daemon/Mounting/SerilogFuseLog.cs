using BackupFuse.Fuse;
using Serilog;
using Serilog.Events;

namespace BackupFuse.Daemon.Mounting;

/// <summary>The FUSE layer's log lines, written through Serilog.</summary>
public sealed class SerilogFuseLog : IFuseLog
{
    /// <inheritdoc/>
    public bool IsEnabled(FuseLogLevel level) => Serilog.Log.IsEnabled(Map(level));

    /// <inheritdoc/>
    public void Log(FuseLogLevel level, string message, Exception? exception)
    {
        // Expected failures carry their story in the message; the stack trace only at debug level.
        if (exception != null && level < FuseLogLevel.Error && !Serilog.Log.IsEnabled(LogEventLevel.Debug))
        {
            exception = null;
        }

        Serilog.Log.Write(Map(level), exception, "{FuseMessage}", message);
    }

    private static LogEventLevel Map(FuseLogLevel level) => level switch
    {
        FuseLogLevel.Debug => LogEventLevel.Debug,
        FuseLogLevel.Information => LogEventLevel.Information,
        FuseLogLevel.Warning => LogEventLevel.Warning,
        _ => LogEventLevel.Error,
    };
}
