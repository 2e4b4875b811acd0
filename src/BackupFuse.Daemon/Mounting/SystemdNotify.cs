using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Serilog;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - The sd_notify protocol is one Unix datagram of "KEY=value" lines sent to the socket named by $NOTIFY_SOCKET
//   (a path, or an abstract name written with a leading '@'). No libsystemd: the whole client is these lines.
// - The unit (packaging/backupfuse@.service) is Type=notify, so systemd holds dependent units (a VM that uses
//   the disk) until READY=1, which is sent once the kernel mount is live, not when the process starts.
// - Without $NOTIFY_SOCKET (not under systemd, or Type=simple) every call does nothing. A failed send is logged
//   and otherwise ignored: notification is advisory and must never take the mount down.
// - STOPPING=1 goes out on the first SIGTERM/SIGINT (systemd then shows "deactivating" while open files are still
//   served) or, at the latest, when the mount has ended.
// - The variable is left in the environment: the daemon never starts children that could claim to be it
//   (NotifyAccess=main makes systemd ignore them anyway).

/// <summary>Tells systemd (Type=notify) that the mount is ready or stopping; does nothing outside systemd.</summary>
public static class SystemdNotify
{
    /// <summary>The environment variable systemd sets for Type=notify services.</summary>
    public const string SocketVariable = "NOTIFY_SOCKET";

    /// <summary>READY=1 with a status line naming the mount point.</summary>
    public static void Ready(string mountPoint) => Send($"READY=1\nSTATUS=Serving {mountPoint}");

    /// <summary>STOPPING=1: unmounting; open files are served until closed.</summary>
    public static void Stopping() => Send("STOPPING=1\nSTATUS=Unmounting; open files are served until closed");

    /// <summary>
    /// Sends STOPPING=1 once: on the first SIGTERM/SIGINT, or when the returned object is disposed (the mount ended
    /// another way, e.g. fusermount3 -u). The handlers leave the signal's default action to the mount's own handlers:
    /// before the mount installs them a signal still ends the process.
    /// </summary>
    public static IDisposable StoppingOnShutdown() => new StoppingNotice();

    private sealed class StoppingNotice : IDisposable
    {
        private readonly PosixSignalRegistration[] _signals;
        private int _sent;

        public StoppingNotice()
        {
            _signals = [PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => SendOnce()), PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => SendOnce())];
        }

        public void Dispose()
        {
            foreach (var signal in _signals)
            {
                signal.Dispose();
            }

            SendOnce();
        }

        private void SendOnce()
        {
            if (Interlocked.Exchange(ref _sent, 1) == 0)
            {
                Stopping();
            }
        }
    }

    /// <summary>Sends one notification datagram to $NOTIFY_SOCKET; returns false when there is none or the send failed.</summary>
    public static bool Send(string message) => Send(Environment.GetEnvironmentVariable(SocketVariable), message);

    /// <summary>Sends one notification datagram to <paramref name="address"/> (a path, or '@' + an abstract name).</summary>
    public static bool Send(string? address, string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (string.IsNullOrEmpty(address) || !OperatingSystem.IsLinux())
        {
            return false;
        }

        if (address[0] == '@')
        {
            address = "\0" + address[1..];
        }
        else if (address[0] != '/')
        {
            Log.Warning("{Variable}={Address} is neither a path nor an abstract socket name; not notifying systemd", SocketVariable, address);
            return false;
        }

        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.UTF8.GetBytes(message), new UnixDomainSocketEndPoint(address));
            return true;
        }
        catch (SocketException e)
        {
            Log.Warning("could not notify systemd through {Address}: {Error}", address.TrimStart('\0'), e.Message);
            return false;
        }
    }
}
