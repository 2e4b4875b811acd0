using System.Buffers;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - One synchronous GET with a Range header per read (HttpRange): the answer must be 206 with a Content-Range of
//   exactly the range asked for and the object's length: a server that ignores ranges (200) or answers another range
//   is refused, never served (it would be wrong bytes).
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
        long length = knownLength ?? retry.RunSync($"{location.Url}: cannot open", ct => HttpRange.Length(client, location.Url, location.Url, ct, Failure), _ => null);
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
            _retry.RunSync($"{Location}: read of {count} bytes at offset {offset}", ct => HttpRange.Read(_client, Location, offset, buffer, count, Length, ct, Failure), _ => null);
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

    private static RemoteError Failure(HttpResponseMessage response) => RemoteError.FromStatus((int)response.StatusCode);
}
