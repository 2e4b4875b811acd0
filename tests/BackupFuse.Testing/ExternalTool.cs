using System.Diagnostics;
using System.Text;

namespace BackupFuse.Testing;

/// <summary>Result of running an external program.</summary>
public sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    /// <summary>Both streams, for assertion messages.</summary>
    public string Output => StdOut + StdErr;
}

/// <summary>Runs oracles (qemu-img, vhdiinfo, 7zz, ...) and other programs with a timeout.</summary>
public static class ExternalTool
{
    /// <summary>Whether <paramref name="program"/> is on PATH.</summary>
    public static bool Exists(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    /// <summary>Runs <paramref name="program"/> and returns its exit code and output; kills it after the timeout.</summary>
    public static ToolResult Run(string program, IEnumerable<string> args, TimeSpan? timeout = null, IDictionary<string, string>? env = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin != null,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (env != null)
        {
            foreach (var (k, v) in env)
            {
                psi.Environment[k] = v;
            }
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data != null) { lock (stdout) { stdout.AppendLine(e.Data); } } };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) { lock (stderr) { stderr.AppendLine(e.Data); } } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (stdin != null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }

        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in time");
        }

        p.WaitForExit();
        lock (stdout)
        {
            lock (stderr)
            {
                return new ToolResult(p.ExitCode, stdout.ToString(), stderr.ToString());
            }
        }
    }

    /// <summary>Runs a program and throws with its output unless it exits 0.</summary>
    public static ToolResult Check(string program, params string[] args)
    {
        var r = Run(program, args);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        }

        return r;
    }
}
