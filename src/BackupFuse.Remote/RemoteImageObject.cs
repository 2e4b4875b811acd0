using System.Buffers;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - What every remote image does alike (HTTP(S) and S3): a fixed Length (images are immutable; a read past it is a
//   truncated image, InvalidDataException, not a network problem) and one synchronous ranged GET per read
//   (HttpRange) inside RetryPolicy.RunSync with the same error text. The answer must be 206 with exactly the range
//   asked for; anything else is refused, never served (it would be wrong bytes).
// - Subclasses say only how a request is made: the URL to GET (S3 presigns one per attempt), how an answer's
//   status and an exception are classified. Messages name Location, never a presigned URL.
// - No caching here (RemoteRepositoryOptions.WrapObject adds it): Refetch answers false, Prefetch does nothing,
//   Dispose has nothing to release. Thread-safe: nothing changes after open; the HttpClient is shared, not owned.

/// <summary>An image behind a remote location, read with ranged HTTP GETs; subclasses build the requests.</summary>
public abstract class RemoteImageObject : IImageObject
{
    private readonly HttpClient _http;
    private readonly RetryPolicy _retry;

    /// <summary>An object at <paramref name="location"/> of <paramref name="length"/> bytes, read through <paramref name="http"/>.</summary>
    protected RemoteImageObject(HttpClient http, RemoteLocation location, long length, RetryPolicy retry)
    {
        _http = http;
        _retry = retry;
        RemoteLocation = location;
        Length = length;
    }

    /// <inheritdoc/>
    public string Location => RemoteLocation.Url;

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public ImageFileStatus? LocalStatus => null;

    /// <summary>Where the object is.</summary>
    protected RemoteLocation RemoteLocation { get; }

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
                ct => HttpRange.Read(_http, ReadUrl(), offset, buffer, count, Length, ct, Failure),
                Classify,
                attemptTimeout: _retry.TimeoutFor(count)); // time for the answer and for the bytes on a slow link
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
    public void Dispose() => GC.SuppressFinalize(this);

    /// <inheritdoc/>
    public override string ToString() => Location;

    /// <summary>The URL one read attempt GETs (called once per attempt).</summary>
    protected abstract string ReadUrl();

    /// <summary>The error an unsuccessful answer stands for.</summary>
    protected abstract RemoteError Failure(HttpResponseMessage response);

    /// <summary>The error an exception of an attempt stands for, or null for the transport's default classification.</summary>
    protected abstract RemoteError? Classify(Exception e);
}
