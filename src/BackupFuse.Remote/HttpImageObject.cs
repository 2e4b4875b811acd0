namespace BackupFuse.Remote;

// Design notes:
// - The reads are RemoteImageObject's (one GET with a Range header per read, 206 with exactly that range or
//   refused); this class says only that the URL read is the location itself and errors are HTTP statuses.
// - Length: HEAD's Content-Length, else (HEAD refused or no length) the total of a "Range: bytes=0-0" GET's
//   Content-Range. A listing's size saves both.
// - Redirects are not followed (HttpRemoteClient): the URL named is the one read, so the root rule holds.
// - Thread-safe; the HttpClient is shared, not owned.

/// <summary>An image behind a web server, read with HTTP range requests.</summary>
public sealed class HttpImageObject : RemoteImageObject
{
    private HttpImageObject(HttpClient client, RemoteLocation location, long length, RetryPolicy retry)
        : base(client, location, length, retry)
    {
    }

    /// <summary>Opens the resource at <paramref name="location"/>; <paramref name="knownLength"/> (from a listing) saves the HEAD.</summary>
    /// <exception cref="FileNotFoundException">No such resource (404).</exception>
    /// <exception cref="IOException">It cannot be reached (after retries), access is denied, or the server does not serve ranges.</exception>
    public static HttpImageObject Open(HttpClient client, RemoteLocation location, RetryPolicy retry, long? knownLength = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(retry);
        long length = knownLength ?? retry.RunSync($"{location.Url}: cannot open", ct => HttpRange.Length(client, location.Url, location.Url, ct, StatusFailure), _ => null);
        return new HttpImageObject(client, location, length, retry);
    }

    /// <inheritdoc/>
    protected override string ReadUrl() => Location;

    /// <inheritdoc/>
    protected override RemoteError Failure(HttpResponseMessage response) => StatusFailure(response);

    /// <inheritdoc/>
    protected override RemoteError? Classify(Exception e) => null;

    private static RemoteError StatusFailure(HttpResponseMessage response) => RemoteError.FromStatus((int)response.StatusCode);
}
