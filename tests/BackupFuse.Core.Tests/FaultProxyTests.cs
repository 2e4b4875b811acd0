using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using BackupFuse.Testing;

namespace BackupFuse.Core.Tests;

/// <summary>A small HTTP server on loopback (HttpListener) that echoes what it got: method, path and body length.</summary>
public sealed class EchoServer : IDisposable
{
    private readonly HttpListener _listener;
    private readonly Task _loop;
    private int _requests;

    public EchoServer()
    {
        for (int attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            Port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            _listener = new HttpListener();
            _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                _listener.Close(); // the port was taken in between
            }
        }

        _loop = Task.Run(Loop);
    }

    public int Port { get; }

    /// <summary>Requests the server answered.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Delay before each answer (a slow server).</summary>
    public TimeSpan AnswerDelay { get; set; }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private async Task Loop()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                try
                {
                    using var body = new MemoryStream();
                    await context.Request.InputStream.CopyToAsync(body);
                    Interlocked.Increment(ref _requests);
                    if (AnswerDelay > TimeSpan.Zero)
                    {
                        await Task.Delay(AnswerDelay);
                    }

                    byte[] sum = System.Security.Cryptography.SHA256.HashData(body.ToArray());
                    byte[] answer = Encoding.ASCII.GetBytes($"{context.Request.HttpMethod} {context.Request.Url!.AbsolutePath} {body.Length} {Convert.ToHexString(sum)}");
                    context.Response.ContentLength64 = answer.Length;
                    await context.Response.OutputStream.WriteAsync(answer);
                    context.Response.Close();
                }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
                {
                    // The client went away (a reset by the proxy).
                }
            });
        }
    }
}

public sealed class FaultProxyTests : IDisposable
{
    private readonly EchoServer _server = new();
    private readonly FaultProxy _proxy;
    private readonly HttpClient _client;

    public FaultProxyTests()
    {
        _proxy = new FaultProxy("127.0.0.1", _server.Port);
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(_proxy.Url), Timeout = TimeSpan.FromSeconds(20) };
    }

    public void Dispose()
    {
        _client.Dispose();
        _proxy.Dispose();
        _server.Dispose();
    }

    private static string Expected(string method, string path, byte[] body) =>
        $"{method} {path} {body.Length} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(body))}";

    [Fact]
    public async Task RequestsAndBodiesPassUnchangedOverOneConnection()
    {
        var body = new byte[300_000];
        new Random(3).NextBytes(body);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(Expected("GET", $"/get{i}", []), await _client.GetStringAsync($"/get{i}"));
        }

        using (var sized = await _client.PostAsync("/sized", new ByteArrayContent(body)))
        {
            Assert.Equal(Expected("POST", "/sized", body), await sized.Content.ReadAsStringAsync());
        }

        // No length known up front: the client sends the body with chunked transfer coding.
        using (var chunked = await _client.PutAsync("/chunked", new StreamContent(new NonSeekableStream(body))))
        {
            Assert.Equal(Expected("PUT", "/chunked", body), await chunked.Content.ReadAsStringAsync());
        }

        Assert.Equal(5, _proxy.Requests);
        Assert.Equal(5, _proxy.Forwarded);
        Assert.Equal(5, _server.Requests);
        Assert.Equal(1, _proxy.Connections); // keep-alive: every request went over one connection
        Assert.True(_proxy.BytesToServer > 2 * body.Length);
        Assert.True(_proxy.BytesToClient > 5 * 64);
    }

    [Fact]
    public async Task EachRequestIsDelayed()
    {
        _proxy.Delay = TimeSpan.FromMilliseconds(20);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 10; i++)
        {
            await _client.GetStringAsync("/slow");
        }

        Assert.True(clock.ElapsedMilliseconds >= 200, $"10 requests took {clock.ElapsedMilliseconds} ms");
        Assert.Equal(10, _proxy.Requests);
    }

    [Fact]
    public async Task SlowDownAnswersForTheNextRequestsOrWhileDown()
    {
        _proxy.FailNext(2);
        for (int i = 0; i < 2; i++)
        {
            using var r = await _client.GetAsync("/x");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            Assert.Equal("Slow Down", r.ReasonPhrase);
            Assert.Contains("<Code>SlowDown</Code>", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(Expected("GET", "/x", []), await _client.GetStringAsync("/x"));
        Assert.Equal(1, _server.Requests);

        _proxy.Down = true;
        var body = new byte[100_000];
        for (int i = 0; i < 3; i++)
        {
            using var r = await _client.PostAsync("/y", new ByteArrayContent(body));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        }

        _proxy.Down = false;
        using (var ok = await _client.PostAsync("/y", new ByteArrayContent(body)))
        {
            Assert.Equal(Expected("POST", "/y", body), await ok.Content.ReadAsStringAsync());
        }

        Assert.Equal(2, _server.Requests);
        Assert.Equal(5, _proxy.Answered503);
        Assert.Equal(7, _proxy.Requests);
    }

    [Fact]
    public async Task ResetsFailTheRequestAndTheNextOneWorks()
    {
        _proxy.ResetNext(1);
        await Assert.ThrowsAsync<HttpRequestException>(() => _client.GetStringAsync("/r"));
        Assert.Equal(Expected("GET", "/r", []), await _client.GetStringAsync("/r"));
        Assert.Equal(1, _proxy.Resets);

        // A request in flight when every connection is reset fails at once, not after the server's answer.
        _server.AnswerDelay = TimeSpan.FromSeconds(3);
        var clock = Stopwatch.StartNew();
        var pending = _client.GetStringAsync("/in-flight");
        while (_server.Requests < 2 && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(10);
        }

        _proxy.ResetConnections();
        await Assert.ThrowsAsync<HttpRequestException>(() => pending);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), $"the reset request took {clock.ElapsedMilliseconds} ms to fail");
    }

    [Fact]
    public async Task RawModeDelaysAndResetsReadBursts()
    {
        using var raw = new FaultProxy("127.0.0.1", _server.Port, httpAware: false);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(raw.Url) };
        Assert.Equal(Expected("GET", "/raw", []), await client.GetStringAsync("/raw"));
        raw.FailNext(1);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetStringAsync("/raw"));
        Assert.Equal(1, raw.Resets);
        Assert.Equal(Expected("GET", "/raw", []), await client.GetStringAsync("/raw"));
    }

    /// <summary>A read-only stream without a length, so HttpClient sends it chunked.</summary>
    private sealed class NonSeekableStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 7000), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
