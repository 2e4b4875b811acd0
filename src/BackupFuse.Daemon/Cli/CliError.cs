namespace BackupFuse.Daemon.Cli;

/// <summary>
/// A failure the user must fix, with one clear message (which names the file and the problem). The top of
/// the program prints it without a stack trace and exits with <see cref="ExitCodes.Error"/>.
/// </summary>
public sealed class CliError(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Process exit codes, the same for every command.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>The command failed; one message says why.</summary>
    public const int Error = 1;

    /// <summary>The command line was wrong.</summary>
    public const int Usage = 2;
}
