using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>Runs the real <c>backupfuse</c> executable: the shipped NativeAOT binary when BACKUPFUSE_EXE names it
/// (scripts/test.sh publishes it), else the one built next to the tests.</summary>
public static class Cli
{
    public static string Executable { get; } = Environment.GetEnvironmentVariable("BACKUPFUSE_EXE") is { Length: > 0 } exe
        ? Path.GetFullPath(exe)
        : Path.Combine(AppContext.BaseDirectory, "backupfuse");

    public static ToolResult Run(params string[] args) => ExternalTool.Run(Executable, args, TimeSpan.FromMinutes(5));

    public static ToolResult RunWithEnv(IDictionary<string, string> env, params string[] args) => ExternalTool.Run(Executable, args, TimeSpan.FromMinutes(5), env);

    /// <summary>Runs and asserts exit code 0, returning the result.</summary>
    public static ToolResult Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, $"backupfuse {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        return r;
    }
}
