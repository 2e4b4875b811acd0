using System.CommandLine;

namespace BackupFuse.Daemon.Cli;

/// <summary>Options every command accepts.</summary>
public static class GlobalOptions
{
    /// <summary><c>-v/--verbose</c>: debug logging.</summary>
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Log more detail (debug level).",
        Recursive = true,
    };

    /// <summary><c>--log-format text|json</c>.</summary>
    public static readonly Option<LogFormat> LogFormat = new("--log-format")
    {
        Description = "Log format on standard error: text for people, json (one object per line) for machines.",
        DefaultValueFactory = _ => Cli.LogFormat.Text,
        Recursive = true,
    };

    /// <summary><c>--log-file PATH</c>: also write JSON logs to a file.</summary>
    public static readonly Option<string?> LogFile = new("--log-file")
    {
        Description = "Also write logs (JSON lines) to this file (never through a symlink; at 10 MiB it rolls over to FILE.1).",
        Recursive = true,
    };
}
