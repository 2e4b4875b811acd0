using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;
using Serilog.Events;
using Serilog.Formatting.Json;
using Serilog.Parsing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// The mount command as a process: where the background daemon logs (a private directory, one bounded file per mount
/// point, never through a symlink), its one-line refusals (a file, no CAP_SYS_ADMIN, conflicting options) and its
/// systemd notifications. Real CLI runs and real mounts of an empty plugin directory.
/// </summary>
[Collection("mounts")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MountProcessTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfproc");

    public MountProcessTests()
    {
        Directory.CreateDirectory(Vms);
        Directory.CreateDirectory(Images);
    }

    private string Vms => _dir["vms"];

    private string Images => _dir["images"];

    private string Logs => _dir["logs"];

    public void Dispose()
    {
        if (MountTable.IsMounted(Vms))
        {
            Cli.Run("unmount", Vms);
        }

        _dir.Dispose();
    }

    /// <summary>The environment of a background mount outside systemd, logging under <paramref name="logs"/>.</summary>
    private static Dictionary<string, string> Env(string? logs) => new()
    {
        ["LOGS_DIRECTORY"] = logs ?? string.Empty,
        ["STATE_DIRECTORY"] = string.Empty,
        ["JOURNAL_STREAM"] = string.Empty,
        ["INVOCATION_ID"] = string.Empty,
    };

    private static void AssertOneLineError(ToolResult r, string expected)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Output}");
        string[] lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got: {r.StdErr}");
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void BackgroundMountLogsToOnePrivateFilePerMountPointAcrossRestarts()
    {
        for (int round = 0; round < 2; round++)
        {
            var r = Cli.RunWithEnv(Env(Logs), "mount", Vms, "--images", Images);
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.Contains($"log {Path.Combine(Logs, LogFiles.FileNameFor(Vms))}", r.StdErr, StringComparison.Ordinal);
            Cli.Ok("unmount", Vms);
            DaemonProcess.WaitUnmounted(Vms, TimeSpan.FromSeconds(10));
        }

        string log = Assert.Single(Directory.GetFiles(Logs));
        Assert.Equal(Path.Combine(Logs, LogFiles.FileNameFor(Vms)), log);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Logs));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log));

        // The daemon's lines are there, from both runs (appended, not replaced).
        int Count(string template) => File.ReadLines(log).Count(l => l.Contains($"\"MessageTemplate\":\"{template} {{MountPoint}}", StringComparison.Ordinal));
        WaitUntil(() => Count("unmounted") == 2, "two unmounted lines in " + log);
        Assert.Equal(2, Count("mounted"));
    }

    [Fact]
    public void TheBackgroundDaemonLeadsASessionOfItsOwn_WithFewMallocArenasFromItsStart()
    {
        // Ctrl-C in the terminal that ran `mount` must never reach the daemon: it makes a session of its own (setsid in
        // the child, no /usr/bin/setsid in between), and it has MALLOC_ARENA_MAX from its first malloc on.
        int pid = MountInTheBackground();
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) ": state ppid pgrp session
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[3]); // session id = its pid
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[2]); // its own process group
        Assert.NotEqual(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), fields[3]);
        string[] environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0'); // as it was at exec
        Assert.Contains("MALLOC_ARENA_MAX=1", environment); // NativeHeap.DaemonArenas
        Cli.Ok("unmount", Vms);
        DaemonProcess.WaitUnmounted(Vms, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void OnceMountedTheBackgroundDaemonNoLongerWritesToThePipesOfTheMountCommand()
    {
        // The `mount` command reads the daemon's standard output and error until the mount is live, then exits: from
        // then on the daemon's streams point at /dev/null (a write to the old pipes would fail with EPIPE), and its log
        // lines still reach the log file.
        int pid = MountInTheBackground();
        WaitUntil(() => new FileInfo($"/proc/{pid}/fd/2").LinkTarget == "/dev/null", "the daemon's standard error at /dev/null");
        Assert.Equal("/dev/null", new FileInfo($"/proc/{pid}/fd/1").LinkTarget);
        Assert.Equal("/dev/null", new FileInfo($"/proc/{pid}/fd/0").LinkTarget);
        Cli.Ok("unmount", Vms);
        DaemonProcess.WaitUnmounted(Vms, TimeSpan.FromSeconds(10));
        string log = Path.Combine(Logs, LogFiles.FileNameFor(Vms));
        WaitUntil(() => File.ReadLines(log).Any(l => l.Contains("\"MessageTemplate\":\"unmounted {MountPoint}", StringComparison.Ordinal)), "the unmounted line in " + log);
    }

    [Fact]
    public void AMountOfUnencryptedBackups_NeverLoadsOpenSsl()
    {
        // OpenSSL costs the daemon about 3.7 MiB resident; only encrypted images need it. Everything a mount derives
        // from small inputs (VHDX GUIDs, the incremental's parent binding) goes through IdentityHash instead.
        var disk = new byte[4 << 20];
        new Random(3).NextBytes(disk.AsSpan(0, 1 << 20));
        File.WriteAllBytes(_dir["v1.raw"], disk);
        new Random(4).NextBytes(disk.AsSpan(2 << 20, 1 << 20));
        File.WriteAllBytes(_dir["v2.raw"], disk);
        Cli.Ok("backup", _dir["v1.raw"], Path.Combine(Images, "full.bfi"));
        Cli.Ok("backup", _dir["v2.raw"], Path.Combine(Images, "inc.bfi"), "--parent", Path.Combine(Images, "full.bfi"));
        Cli.Ok("plugin", "create", Path.Combine(Images, "inc.bfi"), Path.Combine(Vms, "disk.vhdx"));

        int pid = MountInTheBackground();
        // The whole plugin: the synthesized headers and metadata, and the payload read from both images.
        var vhdx = File.ReadAllBytes(Path.Combine(Vms, "disk.vhdx"));
        Assert.Equal("vhdxfile"u8.ToArray(), vhdx[..8]);
        Assert.True(vhdx.Length > disk.Length);
        Assert.True(vhdx.AsSpan().IndexOf(disk.AsSpan((2 << 20) + 4096, 4096)) > 0, "the incremental's data is not in the plugin");
        Assert.True(vhdx.AsSpan().IndexOf(disk.AsSpan(4096, 4096)) > 0, "the full backup's data is not in the plugin");

        string maps = File.ReadAllText($"/proc/{pid}/maps");
        Assert.DoesNotContain("libcrypto", maps, StringComparison.Ordinal);
        Assert.DoesNotContain("libssl", maps, StringComparison.Ordinal);
    }

    /// <summary>`backupfuse mount` without --foreground; the daemon's pid as the command prints it.</summary>
    private int MountInTheBackground()
    {
        var r = Cli.RunWithEnv(Env(Logs), "mount", Vms, "--images", Images);
        Assert.True(r.ExitCode == 0, r.Output);
        var match = System.Text.RegularExpressions.Regex.Match(r.StdErr, @"daemon pid (\d+)");
        Assert.True(match.Success, r.StdErr);
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void UnderSystemdTheBackgroundDaemonLogsToTheJournalOnly()
    {
        // Standard error goes to a file here (the journal's place): the daemon inherits it and keeps it open.
        var env = Env(Logs);
        env["JOURNAL_STREAM"] = "8:12345";
        string journal = _dir["journal"];
        var r = ExternalTool.Run("bash", ["-c", "exec \"$0\" \"$@\" 2>\"$JOURNAL_FILE\"", Cli.Executable, "mount", Vms, "--images", Images], TimeSpan.FromMinutes(1),
            new Dictionary<string, string>(env) { ["JOURNAL_FILE"] = journal });
        Assert.True(r.ExitCode == 0, r.Output + File.ReadAllText(journal));
        Cli.Ok("unmount", Vms);
        DaemonProcess.WaitUnmounted(Vms, TimeSpan.FromSeconds(10));
        Assert.Contains("log standard error (the journal)", File.ReadAllText(journal), StringComparison.Ordinal);
        WaitUntil(() => File.ReadAllText(journal).Contains($"INF unmounted {Vms}", StringComparison.Ordinal), "the daemon's own lines in the journal");
        Assert.False(Directory.Exists(Logs), "no log file under systemd");
    }

    [Fact]
    public void RootsDefaultLogDirectoryIsPrivate()
    {
        Assert.Equal("/var/log/backupfuse", LogFiles.DefaultDirectory());
        string expected = Path.Combine("/var/log/backupfuse", LogFiles.FileNameFor(Vms));
        try
        {
            var r = Cli.RunWithEnv(Env(null), "mount", Vms, "--images", Images);
            Assert.True(r.ExitCode == 0, r.Output);
            Assert.Contains($"log {expected}", r.StdErr, StringComparison.Ordinal);
            Cli.Ok("unmount", Vms);
            Assert.True((File.GetUnixFileMode("/var/log/backupfuse") & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite | UnixFileMode.OtherRead | UnixFileMode.OtherExecute)) == 0);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(expected));
        }
        finally
        {
            File.Delete(expected);
        }
    }

    [Fact]
    public void PlantedSymlinksAtTheDefaultLogPathAreNeverFollowed()
    {
        string target = _dir["precious"];
        File.WriteAllText(target, "original\n");

        // A symlink planted at the file name: refused in one line, the target untouched, nothing mounted.
        Directory.CreateDirectory(Logs, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string planted = Path.Combine(Logs, LogFiles.FileNameFor(Vms));
        File.CreateSymbolicLink(planted, target);
        var r = Cli.RunWithEnv(Env(Logs), "mount", Vms, "--images", Images);
        AssertOneLineError(r, $"{planted}: refusing to log to a symbolic link");
        Assert.False(MountTable.IsMounted(Vms));

        // The log directory itself a symlink (to a directory the attacker can read): refused, nothing written there.
        string elsewhere = _dir["elsewhere"];
        Directory.CreateDirectory(elsewhere);
        File.CreateSymbolicLink(_dir["linked-logs"], elsewhere);
        r = Cli.RunWithEnv(Env(_dir["linked-logs"]), "mount", Vms, "--images", Images);
        AssertOneLineError(r, "not a real directory");
        Assert.Empty(Directory.GetFileSystemEntries(elsewhere));

        // A log directory others can write to: refused.
        string open = _dir["open-logs"];
        Directory.CreateDirectory(open);
        File.SetUnixFileMode(open, (UnixFileMode)0x1FF);
        r = Cli.RunWithEnv(Env(open), "mount", Vms, "--images", Images);
        AssertOneLineError(r, "group and others cannot write");
        Assert.Empty(Directory.GetFileSystemEntries(open));

        // --log-file given by the user: a symlink there is refused too.
        r = Cli.Run("mount", Vms, "--images", Images, "--foreground", "--log-file", planted);
        AssertOneLineError(r, "refusing to log to a symbolic link");
        Assert.Equal("original\n", File.ReadAllText(target));
        Assert.False(MountTable.IsMounted(Vms));
    }

    [Fact]
    public void LogFileIsBoundedWithOneRolledOverCopy()
    {
        Directory.CreateDirectory(Logs, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string path = Path.Combine(Logs, "bounded.log");
        const long limit = 4096;
        using (var sink = new BoundedLogFileSink(path, privateDirectory: true, limit, new JsonFormatter(renderMessage: true)))
        {
            var template = new MessageTemplateParser().Parse("line {Number} of a long-running daemon's log");
            for (int i = 0; i < 500; i++)
            {
                sink.Emit(new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Information, null, template, [new LogEventProperty("Number", new ScalarValue(i))]));
            }
        }

        Assert.Equal(new[] { path, path + ".1" }, Directory.GetFiles(Logs).Order(StringComparer.Ordinal));
        Assert.InRange(new FileInfo(path).Length, 1, limit);
        Assert.InRange(new FileInfo(path + ".1").Length, limit / 2, limit);
        Assert.Contains("line 499 ", File.ReadAllText(path), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void MountOfAFileOrAMissingDirectoryIsOneLine()
    {
        File.WriteAllText(_dir["file"], "x");
        AssertOneLineError(Cli.Run("mount", _dir["file"], "--images", Images), $"{_dir["file"]}: not a directory");
        AssertOneLineError(Cli.Run("mount", Vms, "--at", _dir["file"], "--images", Images), $"--at {_dir["file"]}: not a directory");
        AssertOneLineError(Cli.Run("mount", _dir["missing"], "--images", Images), $"{_dir["missing"]}: no such directory");
    }

    [Fact]
    public void MountWithoutCapSysAdminIsOneLine()
    {
        Assert.True(ExternalTool.Exists("setpriv"), "setpriv (util-linux) is needed");
        foreach (string[] mode in new[] { new[] { "--foreground" }, Array.Empty<string>() })
        {
            var r = ExternalTool.Run("setpriv", ["--inh-caps=-all", "--bounding-set=-sys_admin", Cli.Executable, "mount", Vms, "--images", Images, .. mode], TimeSpan.FromMinutes(1), Env(Logs));
            AssertOneLineError(r, "mounting needs CAP_SYS_ADMIN");
            Assert.False(MountTable.IsMounted(Vms));
        }

        Assert.False(Directory.Exists(Logs), "refused before going to the background: no log directory is made");
    }

    [Fact]
    public void ReadOnlyWithVolatileIsRefusedBeforeGoingToTheBackground()
    {
        var r = Cli.RunWithEnv(Env(Logs), "mount", Vms, "--images", Images, "--read-only", "--volatile");
        AssertOneLineError(r, "--read-only and --volatile exclude each other");
        Assert.False(Directory.Exists(Logs), "no daemon was started, so no log directory was made");
    }

    [Fact]
    public async Task SystemdHearsReadyThenStoppingOnSigterm()
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(_dir["notify"]));
        socket.ReceiveTimeout = 30_000;
        var psi = new ProcessStartInfo(Cli.Executable) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in new[] { "mount", Vms, "--images", Images, "--foreground" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment[SystemdNotify.SocketVariable] = _dir["notify"];
        using var daemon = Process.Start(psi)!;
        var stderr = daemon.StandardError.ReadToEndAsync();
        _ = daemon.StandardOutput.ReadToEndAsync();
        var buffer = new byte[4096];
        try
        {
            Assert.Contains("READY=1", Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer)).Split('\n'));
            ExternalTool.Check("kill", "-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            string stopping;
            try
            {
                stopping = Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new Xunit.Sdk.XunitException("no STOPPING=1 within 30 s of SIGTERM");
            }

            Assert.Contains("STOPPING=1", stopping.Split('\n'));
            Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.True(daemon.ExitCode == 0, await stderr);
        }
        finally
        {
            if (!daemon.HasExited)
            {
                daemon.Kill();
            }
        }
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "timed out waiting for " + what);
            Thread.Sleep(50);
        }
    }
}
