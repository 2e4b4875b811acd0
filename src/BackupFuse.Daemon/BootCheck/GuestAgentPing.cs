using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - qemu-guest-agent inside the guest answers on a virtio-serial port (org.qemu.guest_agent.0) whose host side is a
//   Unix socket QEMU listens on. A guest without an agent never answers: a ping is then just a short timeout.
// - guest-sync with a fresh id each time (the agent's own protocol for this): whatever an agent that started late
//   still had queued is skipped, and only the answer carrying our id counts.
// - One connection kept for the whole boot (QEMU's socket chardev takes one client). Used by one thread.

/// <summary>Pings qemu-guest-agent through QEMU's guest-agent socket.</summary>
public sealed class GuestAgentPing(string socketPath) : IDisposable
{
    private Socket? _socket;
    private long _id = Environment.TickCount64 & 0xFFFFFF;
    private const int MaxPendingChars = 64 * 1024;

    private readonly StringBuilder _pending = new();

    /// <summary>True when the agent answered a guest-sync within <paramref name="wait"/>.</summary>
    public bool Ping(TimeSpan wait)
    {
        try
        {
            if (_socket == null)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(socketPath));
                _socket = s;
            }

            long id = ++_id;
            _socket.Send(Encoding.UTF8.GetBytes($"{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}\n"));
            var deadline = DateTime.UtcNow + wait;
            var buffer = new byte[4096];
            while (DateTime.UtcNow < deadline)
            {
                if (!_socket.Poll(TimeSpan.FromMilliseconds(50), SelectMode.SelectRead))
                {
                    continue;
                }

                int n = _socket.Receive(buffer);
                if (n == 0)
                {
                    Dispose();
                    return false;
                }

                _pending.Append(Encoding.UTF8.GetString(buffer, 0, n));
                string all = _pending.ToString();
                int newline;
                while ((newline = all.IndexOf('\n', StringComparison.Ordinal)) >= 0)
                {
                    string line = all[..newline].Trim('\xff', ' ', '\r');
                    all = all[(newline + 1)..];
                    if (Answers(line, id))
                    {
                        _pending.Clear();
                        return true;
                    }
                }

                // A guest that sends an endless line is not an agent answering: keep no more than one reply's worth.
                _pending.Clear().Append(all.Length <= MaxPendingChars ? all : string.Empty);
            }

            return false;
        }
        catch (SocketException)
        {
            Dispose();
            return false;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _socket?.Dispose();
        _socket = null;
    }

    private static bool Answers(string line, long id)
    {
        // The guest writes these lines, so they may be anything. JsonDocument, unlike JsonObject, does not throw on
        // duplicate property names (JsonObject's indexer threw ArgumentException, which escaped Ping; found by the
        // guest-agent fuzz target).
        try
        {
            using var answer = JsonDocument.Parse(line);
            return answer.RootElement.ValueKind == JsonValueKind.Object && answer.RootElement.TryGetProperty("return", out var value) &&
                value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long got) && got == id;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: an escaped lone surrogate in a property name, met by TryGetProperty.
            return false;
        }
    }
}
