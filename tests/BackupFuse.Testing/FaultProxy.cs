using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BackupFuse.Testing;

// Design notes:
// - A TCP proxy on loopback between a client under test (the daemon's S3/HTTP objects) and a real server, with
//   faults switchable at run time: a fixed delay per request, 503 "Slow Down" answers (S3's XML error body) to the
//   next N requests or while Down, resets of the next N requests' connections or of every open connection now.
// - HTTP-aware by default: the client-to-server direction is parsed into HTTP/1.1 requests (head, then a body by
//   Content-Length or chunked transfer coding), so "per request" means per HTTP request, also on keep-alive
//   connections. The delay is applied once per request, after its head arrived and before it is forwarded. A 503
//   is answered by the proxy itself (the server never sees the request), after draining the request body (unless
//   the client waits for "100 Continue"), with "Connection: close", and the connection is closed. The server-to-
//   client direction is copied byte for byte. Pipelined requests work (they are forwarded in order) but a 503 for
//   one of them closes the connection, which a pipelining client must handle anyway.
// - Raw mode (httpAware: false, for TLS): every read burst from the client counts as a request: it is delayed, and
//   a 503 fault becomes a reset (nothing can be answered inside TLS).
// - Counters: requests seen, requests forwarded, 503 answers, resets, connections, bytes each way.
// - Threading: all settings and counters may be used from any thread; each connection runs two async pumps.
// - Not done: HTTP/2, TLS termination, bandwidth limits, partial (truncated) responses.

/// <summary>A fault-injecting TCP/HTTP proxy on loopback, for tests.</summary>
public sealed class FaultProxy : IDisposable
{
    private const int MaxHeadBytes = 64 << 10;
    private readonly TcpListener _listener;
    private readonly string _targetHost;
    private readonly int _targetPort;
    private readonly bool _httpAware;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Connection, byte> _open = new();
    private readonly Task _acceptLoop;
    private long _delayTicks;
    private int _failNext;
    private int _resetNext;
    private volatile bool _down;
    private long _requests;
    private long _forwarded;
    private long _answered503;
    private long _resets;
    private long _connections;
    private long _bytesToServer;
    private long _bytesToClient;

    /// <summary>Starts a proxy on a free loopback port that forwards to <paramref name="targetHost"/>:<paramref name="targetPort"/>.</summary>
    public FaultProxy(string targetHost, int targetPort, bool httpAware = true)
    {
        _targetHost = targetHost;
        _targetPort = targetPort;
        _httpAware = httpAware;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = Task.Run(AcceptLoop);
    }

    /// <summary>The loopback port the proxy listens on.</summary>
    public int Port { get; }

    /// <summary>http://127.0.0.1:PORT (no trailing slash).</summary>
    public string Url => "http://127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Delay added to every request (HTTP-aware) or read burst (raw) before it is forwarded.</summary>
    public TimeSpan Delay
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        set => Interlocked.Exchange(ref _delayTicks, value.Ticks);
    }

    /// <summary>While true, every request is answered "503 Slow Down" (raw mode: reset).</summary>
    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    /// <summary>Requests seen (HTTP requests, or read bursts in raw mode), answered or not.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests forwarded to the server.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Requests answered "503 Slow Down" by the proxy.</summary>
    public long Answered503 => Interlocked.Read(ref _answered503);

    /// <summary>Connections reset by the proxy.</summary>
    public long Resets => Interlocked.Read(ref _resets);

    /// <summary>Connections accepted.</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>Bytes forwarded from clients to the server.</summary>
    public long BytesToServer => Interlocked.Read(ref _bytesToServer);

    /// <summary>Bytes forwarded from the server to clients (503 answers not included).</summary>
    public long BytesToClient => Interlocked.Read(ref _bytesToClient);

    /// <summary>The next <paramref name="count"/> requests are answered "503 Slow Down" (raw mode: reset).</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failNext, count);

    /// <summary>The connections of the next <paramref name="count"/> requests are reset instead of forwarded.</summary>
    public void ResetNext(int count) => Interlocked.Exchange(ref _resetNext, count);

    /// <summary>Resets every open connection now (requests in flight fail).</summary>
    public void ResetConnections()
    {
        foreach (var c in _open.Keys)
        {
            c.Reset();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        ResetConnections();
        try
        {
            _acceptLoop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _connections);
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(Socket client)
    {
        client.NoDelay = true;
        var server = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var c = new Connection(client, server);
        _open.TryAdd(c, 0);
        try
        {
            await server.ConnectAsync(_targetHost, _targetPort, _stop.Token);
            var back = Pump(server, client, n => Interlocked.Add(ref _bytesToClient, n));
            var forth = _httpAware ? ForwardRequests(c) : ForwardRaw(c);
            await Task.WhenAny(back, forth);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The server is unreachable or a side went away: the connection ends.
        }
        finally
        {
            _open.TryRemove(c, out _);
            c.Close();
        }
    }

    private async Task Pump(Socket from, Socket to, Action<int> count)
    {
        var buffer = new byte[64 << 10];
        try
        {
            while (true)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    return;
                }

                await SendAll(to, buffer.AsMemory(0, n));
                count(n);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task ForwardRaw(Connection c)
    {
        var buffer = new byte[64 << 10];
        try
        {
            while (true)
            {
                int n = await c.Client.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    return;
                }

                Interlocked.Increment(ref _requests);
                if (Take(ref _resetNext) || Take(ref _failNext) || _down)
                {
                    Interlocked.Increment(ref _resets);
                    c.Reset();
                    return;
                }

                await DelayRequest();
                await SendAll(c.Server, buffer.AsMemory(0, n));
                Interlocked.Increment(ref _forwarded);
                Interlocked.Add(ref _bytesToServer, n);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task ForwardRequests(Connection c)
    {
        var reader = new SocketReader(c.Client, _stop.Token);
        try
        {
            while (true)
            {
                byte[]? head = await reader.ReadHeadAsync(MaxHeadBytes);
                if (head == null)
                {
                    return;
                }

                Interlocked.Increment(ref _requests);
                var (contentLength, chunked, expectsContinue) = ParseHead(head);
                if (Take(ref _resetNext))
                {
                    Interlocked.Increment(ref _resets);
                    c.Reset();
                    return;
                }

                if (_down || Take(ref _failNext))
                {
                    if (!expectsContinue)
                    {
                        await CopyBody(reader, null, contentLength, chunked);
                    }

                    await SendAll(c.Client, SlowDownResponse);
                    Interlocked.Increment(ref _answered503);
                    return; // Connection: close
                }

                await DelayRequest();
                await SendAll(c.Server, head);
                Interlocked.Add(ref _bytesToServer, head.Length);
                await CopyBody(reader, c.Server, contentLength, chunked);
                Interlocked.Increment(ref _forwarded);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or InvalidDataException)
        {
        }
    }

    private async Task CopyBody(SocketReader reader, Socket? to, long contentLength, bool chunked)
    {
        if (!chunked)
        {
            await CopyExactly(reader, to, contentLength);
            return;
        }

        while (true)
        {
            byte[] line = await reader.ReadLineAsync(MaxHeadBytes) ?? throw new InvalidDataException("chunked body ends early");
            await Send(to, line);
            string text = Encoding.ASCII.GetString(line).Trim();
            int semicolon = text.IndexOf(';', StringComparison.Ordinal);
            long size = long.Parse(semicolon < 0 ? text : text[..semicolon], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                // Trailer fields, then an empty line.
                while (true)
                {
                    byte[] trailer = await reader.ReadLineAsync(MaxHeadBytes) ?? throw new InvalidDataException("chunked body ends early");
                    await Send(to, trailer);
                    if (trailer.Length <= 2)
                    {
                        return;
                    }
                }
            }

            await CopyExactly(reader, to, size + 2); // data and its CRLF
        }
    }

    private async Task CopyExactly(SocketReader reader, Socket? to, long count)
    {
        while (count > 0)
        {
            var chunk = await reader.ReadSomeAsync((int)Math.Min(count, 64 << 10)) ?? throw new InvalidDataException("body ends early");
            await Send(to, chunk);
            count -= chunk.Length;
        }
    }

    private async Task Send(Socket? to, ReadOnlyMemory<byte> bytes)
    {
        if (to != null)
        {
            await SendAll(to, bytes);
            Interlocked.Add(ref _bytesToServer, bytes.Length);
        }
    }

    private async Task SendAll(Socket to, ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int n = await to.SendAsync(bytes, SocketFlags.None, _stop.Token);
            bytes = bytes[n..];
        }
    }

    private async Task DelayRequest()
    {
        var delay = Delay;
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _stop.Token);
        }
    }

    private static bool Take(ref int counter)
    {
        int seen;
        do
        {
            seen = Volatile.Read(ref counter);
            if (seen <= 0)
            {
                return false;
            }
        }
        while (Interlocked.CompareExchange(ref counter, seen - 1, seen) != seen);
        return true;
    }

    private static (long ContentLength, bool Chunked, bool ExpectsContinue) ParseHead(byte[] head)
    {
        long length = 0;
        bool chunked = false, expects = false;
        foreach (string line in Encoding.ASCII.GetString(head).Split("\r\n").Skip(1))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            string name = line[..colon].Trim();
            string value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                length = long.Parse(value, CultureInfo.InvariantCulture);
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
            }
            else if (name.Equals("Expect", StringComparison.OrdinalIgnoreCase))
            {
                expects = value.Equals("100-continue", StringComparison.OrdinalIgnoreCase);
            }
        }

        return (length, chunked, expects);
    }

    private static readonly byte[] SlowDownResponse = BuildSlowDown();

    private static byte[] BuildSlowDown()
    {
        const string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>";
        return Encoding.ASCII.GetBytes(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: " + body.Length.ToString(CultureInfo.InvariantCulture) +
            "\r\nConnection: close\r\n\r\n" + body);
    }

    /// <summary>One proxied connection: the client's socket and the server's.</summary>
    private sealed class Connection(Socket client, Socket server)
    {
        private int _closed;

        public Socket Client { get; } = client;

        public Socket Server { get; } = server;

        /// <summary>Closes both sides with RST (linger 0).</summary>
        public void Reset()
        {
            foreach (var s in new[] { Client, Server })
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }
            }

            Close();
        }

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                Client.Dispose();
                Server.Dispose();
            }
        }
    }

    /// <summary>Buffered reads of a socket: request heads, lines, and body bytes.</summary>
    private sealed class SocketReader(Socket socket, CancellationToken token)
    {
        private readonly byte[] _buffer = new byte[64 << 10];
        private int _start;
        private int _end;

        /// <summary>Bytes up to and including the empty line ending a request head; null at a clean end of stream.</summary>
        public async Task<byte[]?> ReadHeadAsync(int max)
        {
            var head = new List<byte>();
            while (true)
            {
                byte[]? line = await ReadLineAsync(max);
                if (line == null)
                {
                    return head.Count == 0 ? null : throw new InvalidDataException("request head ends early");
                }

                if (head.Count == 0 && line.Length <= 2)
                {
                    continue; // stray CRLF between requests
                }

                head.AddRange(line);
                if (head.Count > max)
                {
                    throw new InvalidDataException("request head too long");
                }

                if (line.Length <= 2)
                {
                    return [.. head];
                }
            }
        }

        /// <summary>One line including its LF; null at end of stream before any byte.</summary>
        public async Task<byte[]?> ReadLineAsync(int max)
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end && !await FillAsync())
                {
                    return line.Count == 0 ? null : throw new InvalidDataException("line ends early");
                }

                int lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                int take = (lf < 0 ? _end : lf + 1) - _start;
                line.AddRange(_buffer.AsSpan(_start, take));
                _start += take;
                if (lf >= 0)
                {
                    return [.. line];
                }

                if (line.Count > max)
                {
                    throw new InvalidDataException("line too long");
                }
            }
        }

        /// <summary>Up to <paramref name="max"/> bytes; null at end of stream.</summary>
        public async Task<byte[]?> ReadSomeAsync(int max)
        {
            if (_start == _end && !await FillAsync())
            {
                return null;
            }

            int n = Math.Min(max, _end - _start);
            var bytes = _buffer.AsSpan(_start, n).ToArray();
            _start += n;
            return bytes;
        }

        private async Task<bool> FillAsync()
        {
            _start = 0;
            _end = await socket.ReceiveAsync(_buffer, SocketFlags.None, token);
            return _end > 0;
        }
    }
}
