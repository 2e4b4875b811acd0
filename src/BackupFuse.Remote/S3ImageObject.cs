using System.Buffers;
using Amazon.S3;
using Amazon.S3.Model;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - One ranged GET per read, synchronous (HttpRange) on a URL presigned by the SDK for that request (signed with the
//   default credential chain; valid 15 minutes): the SDK's own calls are asynchronous only, and waiting for them on
//   a thread-pool thread starved the pool under parallel reads (RetryPolicy). The answer must be 206 with exactly
//   the range asked for; anything else is never served. The presigned URL holds a signature: it never appears in a
//   message (messages name Location).
// - Length comes from the listing (no extra request) or a presigned HEAD at open. Images are immutable, so it never
//   changes; a read past it is a truncated image (InvalidDataException), not a network problem.
// - No caching here (RemoteRepositoryOptions.WrapObject adds it); Refetch answers false, Prefetch does nothing.
// - Thread-safe: the S3 client is, and nothing else changes after open. The client is shared, not owned.

/// <summary>An image in an S3 object, read by ranged GetObject.</summary>
public sealed class S3ImageObject : IImageObject
{
    private readonly IAmazonS3 _client;
    private readonly HttpClient _http;
    private readonly RemoteLocation _location;
    private readonly RetryPolicy _retry;

    private S3ImageObject(IAmazonS3 client, HttpClient http, RemoteLocation location, long length, RetryPolicy retry)
    {
        _client = client;
        _http = http;
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

    /// <summary>Opens the object at <paramref name="location"/>; <paramref name="knownLength"/> (from a listing) saves the HeadObject.</summary>
    /// <exception cref="FileNotFoundException">No such object.</exception>
    /// <exception cref="IOException">The object cannot be reached (after retries) or access is denied.</exception>
    public static S3ImageObject Open(IAmazonS3 client, HttpClient http, RemoteLocation location, RetryPolicy retry, long? knownLength = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(retry);
        long length = knownLength ?? retry.RunSync(
            $"{location.Url}: cannot open",
            ct => HttpRange.Length(http, Presign(client, location, HttpVerb.HEAD), null, ct, S3Errors.FromResponse),
            S3Errors.Classify);
        return new S3ImageObject(client, http, location, length, retry);
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
            _retry.RunSync(
                $"{Location}: read of {count} bytes at offset {offset}",
                ct => HttpRange.Read(_http, Presign(_client, _location, HttpVerb.GET), offset, buffer, count, Length, ct, S3Errors.FromResponse),
                S3Errors.Classify);
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

    private static string Presign(IAmazonS3 client, RemoteLocation location, HttpVerb verb)
    {
        bool plainHttp = client.Config.ServiceURL?.StartsWith("http://", StringComparison.OrdinalIgnoreCase) == true;
        return client.GetPreSignedURL(new GetPreSignedUrlRequest
        {
            BucketName = location.Bucket,
            Key = location.Key,
            Verb = verb,
            Expires = DateTime.UtcNow.AddMinutes(15),
            Protocol = plainHttp ? Protocol.HTTP : Protocol.HTTPS,
        });
    }
}
