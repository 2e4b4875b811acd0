using System.Net;
using System.Net.Http.Headers;
using BackupFuse.Remote;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 19, the http-listing fuzz finding: one listing entry with a field of another JSON type or a string that is not
/// valid UTF-8 or an escaped lone surrogate (in a value or a property name) made HttpRepository.List fail as a whole ("request failed (InvalidOperationException)"). Such an entry is
/// now not a file entry (and such a size no size), and the other entries are still listed.
/// </summary>
public sealed class HttpListingFuzzFindingTests
{
    [Theory]
    [InlineData("{\"name\":\"bad.bfi\",\"type\":0}", false)]
    [InlineData("{\"name\":\"bad\xff.bfi\",\"type\":\"file\"}", false)]
    [InlineData("{\"name\":\"bad.bfi\",\"type\":\"f\xffile\"}", false)]
    [InlineData("{\"name\":\"bad.bfi\",\"type\":\"\\ud800file\"}", false)]
    [InlineData("{\"n\\udc00\":1,\"name\":\"odd.bfi\"}", true)]
    [InlineData("{\"name\":\"bad\\ud800.bfi\"}", false)]
    [InlineData("{\"name\":\"odd.bfi\",\"type\":\"\\u0066ile\",\"size\":{}}", true)]
    [InlineData("{\"name\":\"odd.bfi\",\"type\":\"file\",\"size\":\"12\"}", true)]
    [InlineData("{\"name\":\"odd.bfi\",\"type\":\"file\",\"size\":-5}", true)]
    public void AnOddEntryDoesNotFailTheListing(string odd, bool isFile)
    {
        // Latin-1 keeps the \xff of the data as the single byte 0xFF: invalid UTF-8 inside a JSON string.
        byte[] body = System.Text.Encoding.Latin1.GetBytes($"[{{\"name\":\"good.bfi\",\"type\":\"file\",\"size\":4096}},{odd}]");
        using var client = new HttpClient(new FixedAnswer(body));
        var repository = new HttpRepository(client, RemoteLocation.ParseRoot("http://listing.invalid/backups/"), new RemoteRepositoryOptions());

        var listed = repository.List();

        // A file entry with an odd size is still a file (its size is unknown); the others are not file entries.
        string[] expected = isFile
            ? ["http://listing.invalid/backups/good.bfi", "http://listing.invalid/backups/odd.bfi"]
            : ["http://listing.invalid/backups/good.bfi"];
        Assert.Equal(expected, listed);
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
