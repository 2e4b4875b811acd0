using Amazon.S3;
using Amazon.S3.Model;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - A prefix of a bucket (s3://BUCKET/PREFIX/) or one named image (s3://BUCKET/KEY.bfi). List pages through
//   ListObjectsV2 with delimiter '/', so only the *.bfi objects directly under the prefix are listed (not
//   recursive, like a local directory). The sizes the listing gives are kept, so opening a listed image needs no
//   HeadObject.
// - Root, Contains, Open (through RemoteRepositoryOptions.WrapObject) and the kept sizes are RemoteRepository's.
// - Thread-safe: the client is. The client is shared, not owned.

/// <summary>Backup images under an S3 prefix (or one S3 image).</summary>
public sealed class S3Repository : RemoteRepository
{
    private readonly IAmazonS3 _client;
    private readonly HttpClient _http;

    /// <summary>A repository over <paramref name="root"/> (an S3 prefix ending in '/', or one image); reads go through <paramref name="http"/>.</summary>
    public S3Repository(IAmazonS3 client, HttpClient http, RemoteLocation root, RemoteRepositoryOptions options)
        : base(root, options, RemoteKind.S3, "s3://")
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(http);
        _client = client;
        _http = http;
    }

    /// <inheritdoc/>
    protected override IEnumerable<(string Url, long? Size)> ListImages()
    {
        string? token = null;
        do
        {
            var request = new ListObjectsV2Request { BucketName = Root.Bucket, Prefix = Root.Key, Delimiter = "/", ContinuationToken = token };
            var page = Options.Retry.Run($"{Location}: cannot list", ct => _client.ListObjectsV2Async(request, ct), S3Errors.Classify);
            foreach (var o in page.S3Objects ?? [])
            {
                string name = o.Key[Root.Key.Length..];
                if (name.Length > 0 && !name.Contains('/', StringComparison.Ordinal) && name.EndsWith(".bfi", StringComparison.Ordinal) &&
                    RemoteLocation.TryParse(Root.Url + name) is { } address)
                {
                    yield return (address.Url, o.Size);
                }
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token != null);
    }

    /// <inheritdoc/>
    protected override IImageObject OpenImage(RemoteLocation location, long? knownLength) =>
        S3ImageObject.Open(_client, _http, location, Options.Retry, knownLength);
}
