using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace BackupFuse.Remote;

// Design notes:
// - The one ranged read of every remote object (HTTP directly, S3 through a presigned URL): a synchronous
//   HttpClient.Send (no thread-pool thread needed for the answer, see RetryPolicy), which must answer 206 with a
//   Content-Range of exactly the range asked for and the object's length, and a body of exactly that length.
//   A 200 (range ignored) or another range is refused: it would be wrong bytes. A short body is transient.
// - The attempt's token cancels the request; a body read that hangs is cut by disposing the response when the token
//   fires (synchronous stream reads take no token).
// - The URL may carry a signature (S3): it is never put into a message; callers name the object by its location.

/// <summary>Synchronous ranged GET and length probe over HTTP(S).</summary>
internal static class HttpRange
{
    /// <summary>
    /// Fills <paramref name="buffer"/>[0..count) with the bytes at <paramref name="offset"/> of the object at
    /// <paramref name="url"/>, whose length is <paramref name="length"/>. <paramref name="failure"/> classifies an error answer.
    /// </summary>
    public static bool Read(HttpClient client, string url, long offset, byte[] buffer, int count, long length, CancellationToken ct, Func<HttpResponseMessage, RemoteError> failure)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Range = new RangeHeaderValue(offset, offset + count - 1);
        using var response = client.Send(request, HttpCompletionOption.ResponseHeadersRead, ct);
        using var cut = ct.Register(response.Dispose);
        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            throw new RemoteAttemptException(response.IsSuccessStatusCode
                ? new RemoteError(RemoteErrorKind.Final, $"the server ignored the byte range (HTTP {(int)response.StatusCode} instead of 206)")
                : failure(response));
        }

        var range = response.Content.Headers.ContentRange;
        if (range is null || range.Unit != "bytes" || range.From != offset || range.To != offset + count - 1 || range.Length != length)
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final,
                string.Create(CultureInfo.InvariantCulture, $"the server answered range '{range}' instead of 'bytes {offset}-{offset + count - 1}/{length}' (has the object changed?)")));
        }

        using var body = response.Content.ReadAsStream(ct);
        int done = 0;
        while (done < count)
        {
            int n = body.Read(buffer, done, count - done);
            if (n == 0)
            {
                throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Transient, $"the answer ended after {done} of {count} bytes"));
            }

            done += n;
        }

        return true;
    }

    /// <summary>
    /// The length of the object: HEAD's Content-Length (<paramref name="headUrl"/>), else, when
    /// <paramref name="getUrl"/> is given, the total of a "Range: bytes=0-0" GET's Content-Range.
    /// </summary>
    public static long Length(HttpClient client, string headUrl, string? getUrl, CancellationToken ct, Func<HttpResponseMessage, RemoteError> failure)
    {
        using (var head = new HttpRequestMessage(HttpMethod.Head, headUrl))
        using (var answer = client.Send(head, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            if (answer.IsSuccessStatusCode && answer.Content.Headers.ContentLength is { } known)
            {
                return known;
            }

            if (getUrl == null || ((int)answer.StatusCode is not (405 or 501) && !answer.IsSuccessStatusCode))
            {
                throw new RemoteAttemptException(answer.IsSuccessStatusCode
                    ? new RemoteError(RemoteErrorKind.Final, "the server gives no object length")
                    : failure(answer));
            }
        }

        using var probe = new HttpRequestMessage(HttpMethod.Get, getUrl);
        probe.Headers.Range = new RangeHeaderValue(0, 0);
        using var response = client.Send(probe, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            throw new RemoteAttemptException(response.IsSuccessStatusCode
                ? new RemoteError(RemoteErrorKind.Final, $"the server does not serve byte ranges (HTTP {(int)response.StatusCode} to a range request)")
                : failure(response));
        }

        return response.Content.Headers.ContentRange?.Length
            ?? throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final, "the server gives no object length (no Content-Length, no Content-Range total)"));
    }
}
