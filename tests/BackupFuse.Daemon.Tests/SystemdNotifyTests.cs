using System.Net.Sockets;
using System.Text;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

/// <summary>The sd_notify client: a datagram reaches a socket given by path or as an abstract name.</summary>
public sealed class SystemdNotifyTests
{
    [Fact]
    public void SystemdNotifyReachesPathAndAbstractSockets()
    {
        using var dir = new TempDirectory("bfsdn");
        string abstractName = $"backupfuse-test-{Guid.NewGuid():N}";
        foreach (var (bindTo, address) in new[] { (dir["notify"], dir["notify"]), ("\0" + abstractName, "@" + abstractName) })
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(bindTo));
            socket.ReceiveTimeout = 5_000;
            Assert.True(SystemdNotify.Send(address, "READY=1\nSTATUS=Serving /vms"));
            var buffer = new byte[256];
            Assert.Equal("READY=1\nSTATUS=Serving /vms", Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer)));
        }

        Assert.False(SystemdNotify.Send(null, "READY=1"));
        Assert.False(SystemdNotify.Send(dir["nobody-listens"], "READY=1"));
    }
}
