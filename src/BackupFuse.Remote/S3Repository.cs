using System.Collections.Concurrent;
using Amazon.S3;
using Amazon.S3.Model;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - A prefix of a bucket (s3://BUCKET/PREFIX/) or one named image (s3://BUCKET/KEY.bfi). List pages through
//   ListObjectsV2 with delimiter '/', so only the *.bfi objects directly under the prefix are listed (not
//   recursive, like a local directory). The sizes the listing gives are kept, so opening a listed image needs no
//   HeadObject.
// - Contains is a prefix match on normalized addresses (RemoteLocation): an image anywhere below the prefix is
//   inside, as a file below a local root is.
// - Every object opened goes through RemoteRepositoryOptions.WrapObject (the persistent cache hooks in there).
// - Thread-safe: the client is; the size map is concurrent. The client is shared, not owned.

/// <summary>Backup images under an S3 prefix (or one S3 image).</summary>
public sealed class S3Repository : IImageRepository
{
    private readonly IAmazonS3 _client;
    private readonly HttpClient _http;
    private readonly RemoteLocation _root;
    private readonly RemoteRepositoryOptions _options;
    private readonly ConcurrentDictionary<string, long> _listedSizes = new(StringComparer.Ordinal);

    /// <summary>A repository over <paramref name="root"/> (an S3 prefix ending in '/', or one image); reads go through <paramref name="http"/>.</summary>
    public S3Repository(IAmazonS3 client, HttpClient http, RemoteLocation root, RemoteRepositoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(options);
        if (root.Kind != RemoteKind.S3)
        {
            throw new ArgumentException($"{root}: not an s3:// location", nameof(root));
        }

        _client = client;
        _http = http;
        _root = root;
        _options = options;
    }

    /// <inheritdoc/>
    public string Location => _root.Url;

    /// <inheritdoc/>
    public bool IsRemote => true;

    /// <inheritdoc/>
    public IReadOnlyList<string> List()
    {
        if (!_root.IsDirectory)
        {
            return [_root.Url];
        }

        var found = new List<string>();
        string? token = null;
        do
        {
            var request = new ListObjectsV2Request { BucketName = _root.Bucket, Prefix = _root.Key, Delimiter = "/", ContinuationToken = token };
            var page = _options.Retry.Run($"{Location}: cannot list", ct => _client.ListObjectsV2Async(request, ct), S3Errors.Classify);
            foreach (var o in page.S3Objects ?? [])
            {
                string name = o.Key[_root.Key.Length..];
                if (name.Length > 0 && !name.Contains('/', StringComparison.Ordinal) && name.EndsWith(".bfi", StringComparison.Ordinal) &&
                    RemoteLocation.TryParse(_root.Url + name) is { } address)
                {
                    found.Add(address.Url);
                    if (o.Size is { } size)
                    {
                        _listedSizes[address.Url] = size;
                    }
                }
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token != null);
        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <inheritdoc/>
    public bool Contains(string address) => RemoteLocation.TryParse(address) is { } location && _root.Contains(location);

    /// <inheritdoc/>
    public IImageObject Open(string address)
    {
        var location = RemoteLocation.Parse(address);
        if (!_root.Contains(location))
        {
            throw new IOException($"{address}: not inside {Location}");
        }

        IImageObject image = S3ImageObject.Open(_client, _http, location, _options.Retry, _listedSizes.TryGetValue(location.Url, out long size) ? size : null);
        return RemoteRepositoryOptions.Wrap(_options.WrapObject, image);
    }

    /// <inheritdoc/>
    public override string ToString() => Location;
}
