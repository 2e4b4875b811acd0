using System.Diagnostics;
using System.Globalization;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - One libvirt for the test classes that use it (an xunit class fixture): the system libvirt that already answers on
//   qemu:///system (under systemd, socket-activated), or else a libvirtd this fixture starts itself, with virtlogd
//   (QEMU's output goes through it) when nothing accepts on its socket. A socket file alone proves nothing: a killed
//   virtlogd leaves it behind ("Connection refused" at domain start), so the stale files are removed first. Only what the fixture started is stopped again, by pid.
// - libvirt runs as root with its packaged configuration (Debian: QEMU as libvirt-qemu, dynamic_ownership on), which
//   is what users have; nothing is reconfigured. TCG domains (type='qemu') need no KVM.
// - Without libvirt the tests report Skipped with the reason (Problem), and fail under BACKUPFUSE_REQUIRE_FUSE=1.

/// <summary>A libvirt daemon answering on qemu:///system for the tests, started here when none runs.</summary>
public sealed class LibvirtDaemon : IDisposable
{
    /// <summary>The connection URI every virsh call uses.</summary>
    public const string Uri = "qemu:///system";

    private readonly List<int> _started = [];

    /// <summary>Starts (or finds) the daemon.</summary>
    public LibvirtDaemon()
    {
        if (!ExternalTool.Exists("virsh") || !File.Exists("/usr/sbin/libvirtd"))
        {
            Problem = "libvirt is missing (packages libvirt-daemon-system, libvirt-clients; scripts/install-deps.sh --test installs them)";
            return;
        }

        string logDir = Path.Combine(Path.GetTempPath(), "backupfuse-test-libvirt");
        Directory.CreateDirectory(logDir);
        if (!Accepts(VirtlogdSocket))
        {
            foreach (string stale in new[] { VirtlogdSocket, "/run/libvirt/virtlogd-admin-sock" }.Where(File.Exists))
            {
                File.Delete(stale);
            }

            _started.Add(StartInBackground("/usr/sbin/virtlogd", Path.Combine(logDir, "virtlogd.log")));
            var wait = Stopwatch.StartNew();
            while (!Accepts(VirtlogdSocket))
            {
                if (wait.Elapsed > TimeSpan.FromSeconds(30) || !Alive(_started[^1]))
                {
                    Problem = $"virtlogd did not accept on {VirtlogdSocket} within {wait.Elapsed.TotalSeconds:F0} s";
                    return;
                }

                Thread.Sleep(100);
            }
        }

        if (Answers())
        {
            return;
        }

        _started.Add(StartInBackground("/usr/sbin/libvirtd", Path.Combine(logDir, "libvirtd.log")));
        var clock = Stopwatch.StartNew();
        while (!Answers())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60) || !Alive(_started[^1]))
            {
                string log = Path.Combine(logDir, "libvirtd.log");
                string tail = File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(5)) : "(no log)";
                Problem = $"libvirtd did not answer on {Uri} within {clock.Elapsed.TotalSeconds:F0} s: {tail}";
                return;
            }

            Thread.Sleep(250);
        }
    }

    /// <summary>Why libvirt cannot be used, or null.</summary>
    public string? Problem { get; }

    /// <summary>Runs virsh on <see cref="Uri"/>.</summary>
    public static ToolResult Virsh(params string[] args) => ExternalTool.Run("virsh", ["-c", Uri, .. args], TimeSpan.FromMinutes(2));

    /// <summary>Runs virsh and fails the test with its output unless it exits 0.</summary>
    public static ToolResult VirshOk(params string[] args)
    {
        var r = Virsh(args);
        Assert.True(r.ExitCode == 0, $"virsh {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        return r;
    }

    /// <summary>Destroys (if running) and undefines a domain; quiet when it does not exist.</summary>
    public static void RemoveDomain(string name)
    {
        Virsh("destroy", name);
        Virsh("undefine", name);
    }

    /// <summary>Stops the daemons this fixture started (newest first).</summary>
    public void Dispose()
    {
        for (int i = _started.Count - 1; i >= 0; i--)
        {
            int pid = _started[i];
            ExternalTool.Run("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)]);
            var clock = Stopwatch.StartNew();
            while (Alive(pid) && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(100);
            }
        }
    }

    private const string VirtlogdSocket = "/run/libvirt/virtlogd-sock";

    private static bool Answers() => Virsh("version").ExitCode == 0;

    private static bool Accepts(string unixSocket)
    {
        try
        {
            using var socket = new System.Net.Sockets.Socket(
                System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            socket.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(unixSocket));
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    private static int StartInBackground(string program, string log)
    {
        var r = ExternalTool.Check("bash", "-c", $"'{program}' >'{log}' 2>&1 </dev/null & echo $!");
        return int.Parse(r.StdOut.Trim(), CultureInfo.InvariantCulture);
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
