using System.CommandLine;
using BackupFuse.BackupImage.Crypto;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// <c>--passphrase-file</c> / <c>--passphrase-env</c>: where the passphrase of encrypted images comes from. Never
/// the command line itself (it would show in the process list and shell history).
/// </summary>
public sealed class PassphraseOptions
{
    /// <summary>Passphrase file option.</summary>
    public Option<string?> File { get; } = new("--passphrase-file")
    {
        Description = "Read the passphrase for encrypted images from this file (one trailing newline is ignored).",
    };

    /// <summary>Passphrase environment variable option.</summary>
    public Option<string?> Environment { get; } = new("--passphrase-env")
    {
        Description = $"Read the passphrase from this environment variable (default {PassphraseSource.DefaultEnvironmentVariable}).",
    };

    /// <summary>Adds both options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.Options.Add(File);
        command.Options.Add(Environment);
    }

    /// <summary>The passphrase source the user chose (the default environment variable when none was given).</summary>
    public PassphraseSource Resolve(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        string? file = parse.GetValue(File);
        string? env = parse.GetValue(Environment);
        if (file != null && env != null)
        {
            throw new CliError("give either --passphrase-file or --passphrase-env, not both");
        }

        return file != null ? PassphraseSource.FromFile(file) : PassphraseSource.FromEnvironment(env ?? PassphraseSource.DefaultEnvironmentVariable);
    }
}
