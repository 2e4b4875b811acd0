using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BackupFuse.Remote;

namespace BackupFuse.Daemon.Tests;

/// <summary>
/// HttpImageObject and RetryPolicy against a real HTTP server on loopback (HttpListener) that misbehaves on purpose:
/// 503s are retried, a server ignoring Range is refused (never wrong bytes), a silent server times out, 404 is final,
/// and every failure that stands is one IOException naming the URL and the offset.
/// </summary>
public sealed class RemoteHttpObjectTests : IDisposable
{
    // Quick retries, but a request timeout no loaded test machine reaches: a request counted twice must mean a retry
    // the code chose, never a slow answer (with 1 s, a busy CI host made "exactly one request" fail now and then).
    private static readonly RetryPolicy Fast = new() { FirstDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(50), Deadline = TimeSpan.FromSeconds(20), RequestTimeout = TimeSpan.FromSeconds(10) };

    // For the server that never answers: the timeout itself is what is tested.
    private static readonly RetryPolicy Impatient = new() { FirstDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(50), Deadline = TimeSpan.FromSeconds(3), RequestTimeout = TimeSpan.FromSeconds(1) };
    private readonly byte[] _content = new byte[100_000];
    private readonly HttpListener _listener = new();
    private readonly HttpClient _client = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly string _url;
    private volatile Func<HttpListenerContext, bool>? _misbehave;
    private int _requests;

    public RemoteHttpObjectTests()
    {
        new Random(12).NextBytes(_content);
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        _url = $"http://127.0.0.1:{port}/img/x.bfi";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _ = Task.Run(Serve);
    }

    [Fact]
    public void Ranged_reads_return_the_bytes_asked_for()
    {
        using var image = HttpImageObject.Open(_client, RemoteLocation.Parse(_url), Fast);
        Assert.Equal(_content.Length, image.Length);
        var buffer = new byte[5000];
        image.ReadExactly(12_345, buffer);
        Assert.Equal(_content.AsSpan(12_345, 5000).ToArray(), buffer);
        Assert.Throws<InvalidDataException>(() => image.ReadExactly(_content.Length - 10, new byte[20]));
    }

    [Fact]
    public void Service_unavailable_is_retried_until_it_passes()
    {
        using var image = HttpImageObject.Open(_client, RemoteLocation.Parse(_url), Fast);
        int failures = 0;
        _misbehave = ctx =>
        {
            if (Interlocked.Increment(ref failures) > 3)
            {
                return false;
            }

            ctx.Response.StatusCode = 503;
            ctx.Response.Close();
            return true;
        };
        var buffer = new byte[100];
        image.ReadExactly(500, buffer);
        Assert.Equal(_content.AsSpan(500, 100).ToArray(), buffer);
        Assert.True(failures >= 4, $"{failures} answers"); // three 503s were retried (a reset connection may add a try)
    }

    [Fact]
    public void A_server_that_ignores_the_range_is_refused_at_once_and_never_served()
    {
        using var image = HttpImageObject.Open(_client, RemoteLocation.Parse(_url), Fast);
        _misbehave = ctx =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.OutputStream.Write(_content);
            ctx.Response.Close();
            return true;
        };
        int before = _requests;
        var buffer = new byte[100];
        var e = Assert.Throws<IOException>(() => image.ReadExactly(700, buffer));
        Assert.Equal($"{_url}: read of 100 bytes at offset 700: the server ignored the byte range (HTTP 200 instead of 206)", e.Message);
        Assert.Equal(1, _requests - before);
        Assert.All(buffer, b => Assert.Equal(0, b));
    }

    [Fact]
    public void A_silent_server_times_out_within_the_deadline_with_one_message()
    {
        using var image = HttpImageObject.Open(_client, RemoteLocation.Parse(_url), Impatient);
        _misbehave = _ => true; // never answers
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<IOException>(() => image.ReadExactly(0, new byte[10]));
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(6));
        Assert.StartsWith($"{_url}: read of 10 bytes at offset 0: no answer within 1 s (after ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_long_transfer_on_a_slow_link_gets_time_for_its_bytes()
    {
        // 4 KiB at about 2 KiB/s: 2 s, twice the 1 s request timeout. Before, the timeout covered the whole transfer
        // whatever its size, so every attempt was cut off and the read failed at the deadline.
        var slowLink = new RetryPolicy { FirstDelay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(50), Deadline = TimeSpan.FromSeconds(20), RequestTimeout = TimeSpan.FromSeconds(1), MinimumBytesPerSecond = 1024 };
        using var image = HttpImageObject.Open(_client, RemoteLocation.Parse(_url), slowLink);
        _misbehave = ctx =>
        {
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers["Content-Range"] = $"bytes 0-4095/{_content.Length}";
            ctx.Response.ContentLength64 = 4096;
            for (int at = 0; at < 4096; at += 512)
            {
                ctx.Response.OutputStream.Write(_content, at, 512);
                ctx.Response.OutputStream.Flush();
                Thread.Sleep(250);
            }

            ctx.Response.Close();
            return true;
        };
        var buffer = new byte[4096];
        image.ReadExactly(0, buffer);
        Assert.Equal(_content.AsSpan(0, 4096).ToArray(), buffer);
    }

    [Fact]
    public void A_missing_object_is_final()
    {
        int before = _requests;
        var e = Assert.Throws<FileNotFoundException>(() => HttpImageObject.Open(_client, RemoteLocation.Parse(_url.Replace("x.bfi", "gone.bfi", StringComparison.Ordinal)), Fast));
        Assert.Contains("no such object (HTTP 404)", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, _requests - before);
    }

    public void Dispose()
    {
        _listener.Close();
        _client.Dispose();
    }

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => Answer(ctx));
        }
    }

    private void Answer(HttpListenerContext ctx)
    {
        Interlocked.Increment(ref _requests);
        try
        {
            if (ctx.Request.Url!.AbsolutePath != "/img/x.bfi")
            {
                ctx.Response.StatusCode = 404;
                ctx.Response.Close();
                return;
            }

            if (ctx.Request.HttpMethod == "HEAD")
            {
                ctx.Response.ContentLength64 = _content.Length;
                ctx.Response.Close();
                return;
            }

            if (_misbehave?.Invoke(ctx) == true)
            {
                return;
            }

            string range = ctx.Request.Headers["Range"]!;
            var parts = range["bytes=".Length..].Split('-');
            long from = long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            long to = long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers["Content-Range"] = $"bytes {from}-{to}/{_content.Length}";
            ctx.Response.ContentLength64 = to - from + 1;
            ctx.Response.OutputStream.Write(_content, (int)from, (int)(to - from + 1));
            ctx.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            // The client went away.
        }
    }
}
