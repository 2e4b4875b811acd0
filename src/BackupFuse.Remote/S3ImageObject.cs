using Amazon.S3;
using Amazon.S3.Model;

namespace BackupFuse.Remote;

// Design notes:
// - The reads are RemoteImageObject's (one synchronous ranged GET per read, HttpRange), here on a URL presigned by
//   the SDK for each attempt (signed with the default credential chain; valid 15 minutes): the SDK's own calls are
//   asynchronous only, and waiting for them on a thread-pool thread starved the pool under parallel reads
//   (RetryPolicy). The presigned URL holds a signature: it never appears in a message (messages name Location).
// - Length comes from the listing (no extra request) or a presigned HEAD at open.
// - Thread-safe: the S3 client is, and nothing else changes after open. The client is shared, not owned.

/// <summary>An image in an S3 object, read by ranged GetObject.</summary>
public sealed class S3ImageObject : RemoteImageObject
{
    private readonly IAmazonS3 _client;

    private S3ImageObject(IAmazonS3 client, HttpClient http, RemoteLocation location, long length, RetryPolicy retry)
        : base(http, location, length, retry)
    {
        _client = client;
    }

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
    protected override string ReadUrl() => Presign(_client, RemoteLocation, HttpVerb.GET);

    /// <inheritdoc/>
    protected override RemoteError Failure(HttpResponseMessage response) => S3Errors.FromResponse(response);

    /// <inheritdoc/>
    protected override RemoteError? Classify(Exception e) => S3Errors.Classify(e);

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
