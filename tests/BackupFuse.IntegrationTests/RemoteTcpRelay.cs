using System.Net;
using System.Net.Sockets;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// A TCP relay on a free loopback port in front of a server, for the remote-repository tests: it counts the bytes
/// the clients send, and can hold all traffic (Pause) so that a test acts at a known point of an upload.
/// </summary>
public sealed class RemoteTcpRelay : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ManualResetEventSlim _running = new(true);
    private long _bytesUp;
    private volatile bool _refuse;

    /// <summary>Relays connections to 127.0.0.1:<paramref name="targetPort"/>.</summary>
    public RemoteTcpRelay(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _ = Task.Run(AcceptLoop);
    }

    /// <summary>The relay's port.</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Bytes clients sent so far.</summary>
    public long BytesUp => Interlocked.Read(ref _bytesUp);

    /// <summary>Holds all traffic (both directions) until <see cref="Resume"/>.</summary>
    public void Pause() => _running.Reset();

    /// <summary>Lets traffic flow again.</summary>
    public void Resume() => _running.Set();

    /// <summary>While true, the "server" is down: new connections are closed at once, open ones at their next bytes.</summary>
    public bool Refuse
    {
        get => _refuse;
        set => _refuse = value;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _stop.Cancel();
        _running.Set();
        _listener.Stop();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Relay(client));
        }
    }

    private async Task Relay(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient())
        {
            if (_refuse)
            {
                client.Client.LingerState = new LingerOption(true, 0); // a reset, as from a dead server
                return;
            }

            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
                var up = Copy(client.GetStream(), server.GetStream(), count: true);
                var down = Copy(server.GetStream(), client.GetStream(), count: false);
                await Task.WhenAny(up, down);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The connection ends; the client sees it closed.
            }
        }
    }

    private async Task Copy(Stream from, Stream to, bool count)
    {
        byte[] buffer = new byte[64 * 1024];
        while (true)
        {
            _running.Wait(_stop.Token);
            int n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0 || _refuse)
            {
                return;
            }

            _running.Wait(_stop.Token);
            if (count)
            {
                Interlocked.Add(ref _bytesUp, n);
            }

            await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
        }
    }
}
