using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - The QEMU Machine Protocol over the Unix socket QEMU listens on (-qmp unix:PATH,server=on,wait=off): one JSON
//   object per line. Connect reads the greeting and enters command mode (qmp_capabilities). Execute sends one command
//   and reads lines until its answer; asynchronous events read on the way are kept (Events) for the caller, which
//   looks for SHUTDOWN, RESET and GUEST_PANICKED.
// - Used by one thread (the loop of one machine): not thread-safe. Every read has a timeout, so a hung QEMU fails
//   the command instead of hanging the check.

/// <summary>A minimal QMP client.</summary>
public sealed class QmpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    /// <summary>Events seen so far (their "event" names), in order.</summary>
    public List<string> Events { get; } = [];

    /// <summary>Connects to QEMU's QMP socket at <paramref name="path"/>, retrying until <paramref name="within"/> has passed.</summary>
    public static QmpClient Connect(string path, TimeSpan within, Func<bool> qemuAlive)
    {
        ArgumentNullException.ThrowIfNull(qemuAlive);
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000, SendTimeout = 10_000 };
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(path));
                var client = new QmpClient(socket);
                try
                {
                    client.ReadLine(); // the greeting
                    client.Execute("qmp_capabilities");
                    return client;
                }
                catch
                {
                    client.Dispose();
                    throw;
                }
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && qemuAlive())
            {
                socket.Dispose();
                Thread.Sleep(100);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns its "return" value; IOException with QEMU's message on an error.</summary>
    public JsonNode? Execute(string command, JsonObject? arguments = null)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments != null)
        {
            request["arguments"] = arguments;
        }

        var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
        _stream.Write(bytes);
        while (true)
        {
            var message = ReadLine();
            if (message["event"] is { } ev)
            {
                Events.Add(ev.GetValue<string>());
                continue;
            }

            if (message["error"] is JsonObject error)
            {
                throw new IOException($"QMP {command}: {error["desc"]?.GetValue<string>() ?? error.ToJsonString()}");
            }

            if (message.ContainsKey("return"))
            {
                return message["return"];
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }

    private JsonObject ReadLine()
    {
        string? line;
        try
        {
            line = _reader.ReadLine();
        }
        catch (IOException e)
        {
            throw new IOException($"QMP: no answer from QEMU ({e.Message})", e);
        }

        if (line == null)
        {
            throw new IOException("QMP: QEMU closed its control socket");
        }

        try
        {
            return JsonNode.Parse(line) as JsonObject ?? throw new IOException($"QMP: unexpected message {line}");
        }
        catch (JsonException e)
        {
            throw new IOException($"QMP: unreadable message from QEMU: {e.Message}", e);
        }
    }
}
