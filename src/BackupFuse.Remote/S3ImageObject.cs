using System.Buffers;
using System.Globalization;
using Amazon.S3;
using Amazon.S3.Model;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - One ranged GetObject per read, straight into a pooled buffer that is then copied into the caller's span (a span
//   cannot cross an await). The answer must be the range asked for: 206 (or 200 for the whole object) with exactly
//   the requested length and, when given, a matching Content-Range; anything else is retried and never served.
// - Length comes from the listing (no extra request) or a HeadObject at open. Images are immutable, so it never
//   changes; a read past it is a truncated image (InvalidDataException), not a network problem.
// - No caching here (RemoteRepositoryOptions.WrapObject adds it); Refetch answers false, Prefetch does nothing.
// - Thread-safe: the S3 client is, and nothing else changes after open. The client is shared, not owned.

/// <summary>An image in an S3 object, read by ranged GetObject.</summary>
public sealed class S3ImageObject : IImageObject
{
    private readonly IAmazonS3 _client;
    private readonly RemoteLocation _location;
    private readonly RetryPolicy _retry;

    private S3ImageObject(IAmazonS3 client, RemoteLocation location, long length, RetryPolicy retry)
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

    /// <summary>Opens the object at <paramref name="location"/>; <paramref name="knownLength"/> (from a listing) saves the HeadObject.</summary>
    /// <exception cref="FileNotFoundException">No such object.</exception>
    /// <exception cref="IOException">The object cannot be reached (after retries) or access is denied.</exception>
    public static S3ImageObject Open(IAmazonS3 client, RemoteLocation location, RetryPolicy retry, long? knownLength = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(retry);
        long length = knownLength ?? retry.Run(
            $"{location.Url}: cannot open",
            async ct => (await client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = location.Bucket, Key = location.Key }, ct).ConfigureAwait(false)).ContentLength,
            S3Errors.Classify);
        return new S3ImageObject(client, location, length, retry);
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
            _retry.Run($"{Location}: read of {count} bytes at offset {offset}", ct => ReadAttempt(offset, buffer, count, ct), S3Errors.Classify);
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

    private async Task<bool> ReadAttempt(long offset, byte[] buffer, int count, CancellationToken ct)
    {
        var request = new GetObjectRequest { BucketName = _location.Bucket, Key = _location.Key, ByteRange = new ByteRange(offset, offset + count - 1) };
        using var response = await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
        bool whole = offset == 0 && count == Length;
        if (response.HttpStatusCode != System.Net.HttpStatusCode.PartialContent && !(whole && response.HttpStatusCode == System.Net.HttpStatusCode.OK))
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final, $"the server ignored the byte range (HTTP {(int)response.HttpStatusCode})"));
        }

        string expected = string.Create(CultureInfo.InvariantCulture, $"bytes {offset}-{offset + count - 1}/{Length}");
        if (!string.IsNullOrEmpty(response.ContentRange) && response.ContentRange != expected)
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final, $"the server answered range '{response.ContentRange}' instead of '{expected}' (has the object changed?)"));
        }

        int done = 0;
        var body = response.ResponseStream;
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
