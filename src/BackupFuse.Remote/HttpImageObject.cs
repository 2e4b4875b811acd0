using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - One GET with a Range header per read. The answer must be 206 with a Content-Range of exactly the range asked
//   for and the object's length: a server that ignores ranges (200) or answers another range is refused, never
//   served (it would be wrong bytes).
// - Length: HEAD's Content-Length, else (HEAD refused or no length) the total of a "Range: bytes=0-0" GET's
//   Content-Range. A listing's size saves both.
// - Redirects are not followed (HttpRemoteClient): the URL named is the one read, so the root rule holds.
// - No caching here (RemoteRepositoryOptions.WrapObject adds it). Thread-safe; the HttpClient is shared, not owned.

/// <summary>An image behind a web server, read with HTTP range requests.</summary>
public sealed class HttpImageObject : IImageObject
{
    private readonly HttpClient _client;
    private readonly RemoteLocation _location;
    private readonly RetryPolicy _retry;

    private HttpImageObject(HttpClient client, RemoteLocation location, long length, RetryPolicy retry)
    {
        _client = client;
        _location = location;
        _retry = retry;
        Length = length;
    }

    /// <inheritdoc/>
    public string Location => _location.Url;

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public ImageFileStatus? LocalStatus => null;

    /// <summary>Opens the resource at <paramref name="location"/>; <paramref name="knownLength"/> (from a listing) saves the HEAD.</summary>
    /// <exception cref="FileNotFoundException">No such resource (404).</exception>
    /// <exception cref="IOException">It cannot be reached (after retries), access is denied, or the server does not serve ranges.</exception>
    public static HttpImageObject Open(HttpClient client, RemoteLocation location, RetryPolicy retry, long? knownLength = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(retry);
        long length = knownLength ?? retry.Run($"{location.Url}: cannot open", ct => LengthAttempt(client, location, ct), _ => null);
        return new HttpImageObject(client, location, length, retry);
    }

    /// <inheritdoc/>
    public void ReadExactly(long offset, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        if (offset < 0 || offset + destination.Length > Length)
        {
            throw new InvalidDataException($"{Location}: unexpected end of object at offset {Math.Min(Math.Max(offset, 0), Length)} (object is {Length} bytes): the image is truncated");
        }

        int count = destination.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            _retry.Run($"{Location}: read of {count} bytes at offset {offset}", ct => ReadAttempt(offset, buffer, count, ct), _ => null);
            buffer.AsSpan(0, count).CopyTo(destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc/>
    public bool Refetch(long offset, long length) => false;

    /// <inheritdoc/>
    public void Prefetch(long offset, long length)
    {
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    /// <inheritdoc/>
    public override string ToString() => Location;

    private static async Task<long> LengthAttempt(HttpClient client, RemoteLocation location, CancellationToken ct)
    {
        using (var head = new HttpRequestMessage(HttpMethod.Head, location.Url))
        using (var answer = await client.SendAsync(head, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false))
        {
            if (answer.IsSuccessStatusCode && answer.Content.Headers.ContentLength is { } length)
            {
                return length;
            }

            if ((int)answer.StatusCode is not (405 or 501) && !answer.IsSuccessStatusCode)
            {
                throw new RemoteAttemptException(RemoteError.FromStatus((int)answer.StatusCode));
            }
        }

        using var probe = new HttpRequestMessage(HttpMethod.Get, location.Url);
        probe.Headers.Range = new RangeHeaderValue(0, 0);
        using var response = await client.SendAsync(probe, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            throw new RemoteAttemptException(response.IsSuccessStatusCode
                ? new RemoteError(RemoteErrorKind.Final, $"the server does not serve byte ranges (HTTP {(int)response.StatusCode} to a range request)")
                : RemoteError.FromStatus((int)response.StatusCode));
        }

        return response.Content.Headers.ContentRange?.Length
            ?? throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final, "the server gives no object length (no Content-Length, no Content-Range total)"));
    }

    private async Task<bool> ReadAttempt(long offset, byte[] buffer, int count, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Location);
        request.Headers.Range = new RangeHeaderValue(offset, offset + count - 1);
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            throw new RemoteAttemptException(response.IsSuccessStatusCode
                ? new RemoteError(RemoteErrorKind.Final, $"the server ignored the byte range (HTTP {(int)response.StatusCode} instead of 206)")
                : RemoteError.FromStatus((int)response.StatusCode));
        }

        var range = response.Content.Headers.ContentRange;
        if (range is null || range.Unit != "bytes" || range.From != offset || range.To != offset + count - 1 || range.Length != Length)
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final,
                $"the server answered range '{range}' instead of 'bytes {offset}-{offset + count - 1}/{Length}' (has the object changed?)"));
        }

        using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        int done = 0;
        while (done < count)
        {
            int n = await body.ReadAsync(buffer.AsMemory(done, count - done), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Transient, $"the answer ended after {done} of {count} bytes"));
            }

            done += n;
        }

        return true;
    }
}
