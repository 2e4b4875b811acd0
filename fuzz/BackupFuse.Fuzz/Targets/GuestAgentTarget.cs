using System.Net.Sockets;
using System.Text;
using BackupFuse.Daemon.BootCheck;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - During a boot check the guest, i.e. the backed-up system, answers qemu-guest-agent pings: its bytes are
//   untrusted. The harness plays QEMU's socket: one Unix socket, one connection kept (as QEMU's chardev does); for
//   each input it first queues the input and a newline on the connection, then calls GuestAgentPing.Ping with a 1 ms
//   wait, which reads what is queued, and drains the ping's request. The answer cannot carry the ping's id, so the
//   result is false: what is checked is that any bytes end in true or false, never an exception.
// - Inputs are capped below one socket read (4 KiB) so that nothing is left over for the next input.

/// <summary>The qemu-guest-agent answer parser of the boot check (src/BackupFuse.Daemon/BootCheck/GuestAgentPing.cs).</summary>
public sealed class GuestAgentTarget : FuzzTarget
{
    private Socket? _server;
    private GuestAgentPing? _ping;
    private Socket? _connection;

    /// <inheritdoc/>
    public override string Name => "guest-agent";

    /// <inheritdoc/>
    public override string Description => "qemu-guest-agent answer lines: GuestAgentPing.Ping; passes on true or false, never an exception";

    /// <inheritdoc/>
    public override int MaxInputLength => 4000;

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        if (_ping == null)
        {
            string path = Path.Combine(ScratchDirectory, "agent.sock");
            File.Delete(path);
            _server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            _server.Bind(new UnixDomainSocketEndPoint(path));
            _server.Listen(1);
            _ping = new GuestAgentPing(path);
        }

        if (_connection != null)
        {
            _connection.Send([.. input, (byte)'\n']);
        }

        _ping.Ping(TimeSpan.FromMilliseconds(1));
        if (_connection == null)
        {
            // The first ping connects: queue this input now and ping once more.
            _connection = _server!.Accept();
            _connection.Send([.. input, (byte)'\n']);
            _ping.Ping(TimeSpan.FromMilliseconds(1));
        }

        var drain = new byte[4096];
        while (_connection.Available > 0)
        {
            _connection.Receive(drain);
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        var seeds = new Dictionary<string, string>
        {
            ["answer"] = "{\"return\": 12345}",
            ["error"] = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-sync has not been found\"}}",
            ["delimited"] = "\xff{\"return\": {}}\r",
            ["two-lines"] = "{\"return\": 1}\n{\"return\": 2}",
        };
        foreach (var (name, text) in seeds)
        {
            File.WriteAllText(Path.Combine(directory, name), text, new UTF8Encoding(false));
        }
    }
}
