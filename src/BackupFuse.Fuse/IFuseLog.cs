namespace BackupFuse.Fuse;

/// <summary>Severity of a FUSE log line (mapped onto the daemon's logger).</summary>
public enum FuseLogLevel
{
    /// <summary>Expected outcomes (ENOENT on lookup, ...), request tracing.</summary>
    Debug,

    /// <summary>Mount lifecycle.</summary>
    Information,

    /// <summary>A request failed for a reason worth a line (damaged plugin, refused access).</summary>
    Warning,

    /// <summary>Unexpected failure.</summary>
    Error,
}

/// <summary>The logging the FUSE layer needs; the daemon plugs its logger in (no logging package dependency here).</summary>
public interface IFuseLog
{
    /// <summary>Whether lines at <paramref name="level"/> are kept (lets callers skip building the message).</summary>
    bool IsEnabled(FuseLogLevel level);

    /// <summary>Writes one line.</summary>
    void Log(FuseLogLevel level, string message, Exception? exception);
}

/// <summary>Ready-made <see cref="IFuseLog"/> implementations.</summary>
public static class FuseLog
{
    /// <summary>Discards everything.</summary>
    public static IFuseLog Null { get; } = new DelegateLog(FuseLogLevel.Error + 1, static (_, _, _) => { });

    /// <summary>A log that forwards lines at or above <paramref name="minimum"/> to <paramref name="write"/>.</summary>
    public static IFuseLog From(Action<FuseLogLevel, string, Exception?> write, FuseLogLevel minimum = FuseLogLevel.Information) =>
        new DelegateLog(minimum, write ?? throw new ArgumentNullException(nameof(write)));

    private sealed class DelegateLog(FuseLogLevel minimum, Action<FuseLogLevel, string, Exception?> write) : IFuseLog
    {
        public bool IsEnabled(FuseLogLevel level) => level >= minimum;

        public void Log(FuseLogLevel level, string message, Exception? exception)
        {
            if (level >= minimum)
            {
                write(level, message, exception);
            }
        }
    }
}
