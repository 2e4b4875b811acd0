using System.Net;
using System.Net.Http.Headers;
using System.Text;
using BackupFuse.Remote;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - The body of a web server's directory listing (nginx JSON autoindex) comes from whoever runs the server.
//   HttpRepository.List is called over an HttpClient whose handler answers every request with the input as a 200
//   application/json body: the real request, response and parsing code, no network.
// - Documented outcomes (IImageRepository.List): a list, IOException, UnauthorizedAccessException. The message of an
//   IOException is what the user reads (one line naming the URL and the problem): one that only names a .NET
//   exception type ("request failed (InvalidOperationException)") means the parser tripped over the input instead of
//   judging it, and counts as a crash.

/// <summary>The HTTP repository's directory listing parser (src/BackupFuse.Remote/HttpRepository.cs).</summary>
public sealed class HttpListingTarget : FuzzTarget
{
    private static readonly RemoteRepositoryOptions Options = new() { Retry = new RetryPolicy { Deadline = TimeSpan.Zero, RequestTimeout = TimeSpan.FromSeconds(30) } };

    /// <inheritdoc/>
    public override string Name => "http-listing";

    /// <inheritdoc/>
    public override string Description =>
        "nginx JSON autoindex body: HttpRepository.List; passes on a list, IOException with a clear message, UnauthorizedAccessException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        using var client = new HttpClient(new FixedAnswer(input));
        var repository = new HttpRepository(client, RemoteLocation.ParseRoot("http://listing.invalid/backups/"), Options);
        try
        {
            foreach (string url in repository.List())
            {
                if (!repository.Contains(url))
                {
                    throw new FuzzFailureException($"listed image {url} is not inside the repository");
                }
            }
        }
        catch (UnauthorizedAccessException)
        {
        }
        catch (IOException e) when (!e.Message.Contains("Exception", StringComparison.Ordinal))
        {
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        var seeds = new Dictionary<string, string>
        {
            ["nginx"] = """
                [
                { "name":"web01-full.bfi", "type":"file", "mtime":"Tue, 01 Dec 2026 10:00:00 GMT", "size":1048576 },
                { "name":"web01-inc.bfi", "type":"file", "mtime":"Tue, 01 Dec 2026 11:00:00 GMT", "size":4096 },
                { "name":"old", "type":"directory", "mtime":"Tue, 01 Dec 2026 09:00:00 GMT" },
                { "name":"notes.txt", "type":"file", "mtime":"Tue, 01 Dec 2026 09:00:00 GMT", "size":12 }
                ]
                """,
            ["empty"] = "[]",
            ["odd-names"] = """[{"name":"a b%20c.bfi","type":"file","size":1},{"name":"../x.bfi","type":"file"},{"name":"ü.bfi"},{"name":"..","type":"directory"}]""",
            ["not-array"] = """{"name":"x.bfi"}""",
        };
        foreach (var (name, text) in seeds)
        {
            File.WriteAllText(Path.Combine(directory, name), text, new UTF8Encoding(false));
        }
    }

    private sealed class FixedAnswer(byte[] body) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = content, RequestMessage = request });
        }
    }
}
