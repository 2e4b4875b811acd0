using System.Diagnostics;
using BackupFuse.Testing;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// A real <c>backupfuse mount --foreground</c> process, started and stopped the way a user or systemd would
/// (SIGTERM, SIGKILL, fusermount3 -u). Its log is kept for assertion messages.
/// </summary>
public sealed class DaemonProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _log = new();

    private DaemonProcess(Process process, string mountPoint)
    {
        _process = process;
        MountPoint = mountPoint;
    }

    public string MountPoint { get; }

    public int Pid => _process.Id;

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// The log once <paramref name="done"/> holds for it, or as it is after <paramref name="timeout"/>: the daemon's
    /// standard error reaches this process through a pipe and an asynchronous reader, so a line the daemon wrote
    /// before it answered a request may arrive here a moment after the answer.
    /// </summary>
    public string WaitForLog(Func<string, bool> done, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string log = Log;
        while (!done(log) && clock.Elapsed < timeout)
        {
            Thread.Sleep(20);
            log = Log;
        }

        return log;
    }

    /// <summary>Starts the daemon and waits until the mount is live.</summary>
    public static DaemonProcess Start(string mountPoint, params string[] args) => StartWithEnv(mountPoint, null, args);

    /// <summary>Starts the daemon with extra environment variables and waits until the mount is live.</summary>
    public static DaemonProcess StartWithEnv(string mountPoint, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(Cli.Executable) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var (name, value) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
        }

        psi.ArgumentList.Add("mount");
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.ArgumentList.Add("--foreground");
        var p = Process.Start(psi)!;
        var daemon = new DaemonProcess(p, Path.GetFullPath(mountPoint));
        p.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        p.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        var clock = Stopwatch.StartNew();
        while (!MountTable.IsLive(mountPoint))
        {
            if (p.HasExited || clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                daemon.Dispose();
                throw new InvalidOperationException($"daemon did not mount {mountPoint}: {daemon.Log}");
            }

            Thread.Sleep(20);
        }

        return daemon;
    }

    /// <summary>Sends a signal (TERM, KILL, INT) to the daemon.</summary>
    public void Signal(string name) => ExternalTool.Check("kill", "-" + name, Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Waits for the process to end; returns its exit code.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            throw new TimeoutException($"daemon {Pid} still running after {timeout}: {Log}");
        }

        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>Waits until the mount has gone from the mount table.</summary>
    public static void WaitUnmounted(string mountPoint, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (MountTable.IsMounted(mountPoint))
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{mountPoint} is still mounted after {timeout}");
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>Stops the daemon cleanly (SIGTERM) and waits for the mount to go.</summary>
    public void Stop()
    {
        if (!_process.HasExited)
        {
            Signal("TERM");
            WaitForExit(TimeSpan.FromSeconds(30));
        }

        WaitUnmounted(MountPoint, TimeSpan.FromSeconds(10));
    }

    private void Append(string? line)
    {
        if (line != null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Stop();
            }
        }
        catch (Exception)
        {
            // Cleanup must not hide the test's own failure: force the mount away.
            try
            {
                _process.Kill();
            }
            catch (InvalidOperationException)
            {
            }

            ExternalTool.Run("umount", ["-l", MountPoint]);
        }

        _process.Dispose();
    }
}
