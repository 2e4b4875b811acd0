using Amazon.S3;
using Amazon.S3.Model;

namespace BackupFuse.Remote;

// Design notes:
// - A forward-only stream that writes one S3 object by multipart upload, for BackupWriter's stream overload: no
//   local temporary file. Bytes fill a part buffer; a full part is uploaded in the background while the writer goes
//   on, with at most MaxInFlight parts uploading, so memory stays at about (MaxInFlight + 1) x part size whatever the
//   image size. A failed part fails the next Write (or Complete) with its one-line error.
// - Part sizes: 8 MiB, doubling every 2000 parts up to 128 MiB, so the 10,000-part limit is reached only past
//   ~490 GB of image (S3 allows parts of different sizes; all but the last must be >= 5 MiB).
// - Nothing is visible until Complete: the caller calls it only after the writer has finished successfully; Dispose
//   without Complete (any failure, cancellation) aborts the upload. A failed abort is a warning, not an error: an
//   upload that was never completed is never visible as an object (s3rver even answers 405 to the abort), and on real
//   stores a lifecycle rule (AbortIncompleteMultipartUpload) removes the parts. A killed process leaves the same
//   invisible upload.
// - Never overwrites: Begin checks with HeadObject that no object has the key, and Complete sends If-None-Match: *
//   (stores with conditional writes, like AWS, refuse a race then; others rely on the HeadObject).
// - Not thread-safe (one writer), like any Stream; the part uploads run on the thread pool.

/// <summary>Writes an S3 object by multipart upload from a forward-only stream of bytes.</summary>
public sealed class S3MultipartUploadStream : Stream
{
    /// <summary>The first parts' size.</summary>
    public const int BasePartSize = 8 << 20;

    private const int PartsPerSize = 2000;
    private const int MaxSizeDoublings = 4;
    private const int MaxParts = 10000;

    private readonly IAmazonS3 _client;
    private readonly RemoteLocation _location;
    private readonly RetryPolicy _retry;
    private readonly string _uploadId;
    private readonly int _maxInFlight;
    private readonly Action<string>? _warn;
    private readonly List<PartETag> _done = [];
    private readonly Queue<Task<PartETag>> _inFlight = new();
    private readonly CancellationTokenSource _abandon = new();
    private byte[] _part;
    private int _filled;
    private int _nextPart = 1;
    private long _position;
    private bool _completed;
    private bool _disposed;

    private S3MultipartUploadStream(IAmazonS3 client, RemoteLocation location, RetryPolicy retry, string uploadId, int maxInFlight, Action<string>? warn)
    {
        _client = client;
        _location = location;
        _retry = retry;
        _uploadId = uploadId;
        _maxInFlight = maxInFlight;
        _warn = warn;
        _part = new byte[PartSize(1)];
    }

    /// <summary>The object being written.</summary>
    public string Location => _location.Url;

    /// <inheritdoc/>
    public override bool CanRead => false;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => !_disposed && !_completed;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    /// <summary>
    /// Starts the upload of <paramref name="location"/> (an S3 object key) after checking that no object has that key.
    /// <paramref name="warn"/> receives warnings (a failed abort).
    /// </summary>
    /// <exception cref="IOException">The object exists already, or the store refuses or cannot be reached.</exception>
    public static S3MultipartUploadStream Begin(IAmazonS3 client, RemoteLocation location, RetryPolicy retry, int maxInFlight = 4, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(retry);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        if (location.Kind != RemoteKind.S3 || location.IsDirectory || location.Key.Length == 0)
        {
            throw new IOException($"{location}: not an S3 object address (s3://BUCKET/PREFIX/NAME.bfi)");
        }

        bool exists;
        try
        {
            retry.Run($"{location.Url}: cannot check whether it exists",
                async ct => await client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = location.Bucket, Key = location.Key }, ct).ConfigureAwait(false),
                S3Errors.Classify);
            exists = true;
        }
        catch (FileNotFoundException)
        {
            exists = false;
        }

        if (exists)
        {
            throw new IOException($"{location.Url} already exists: an image is never overwritten");
        }

        string uploadId = retry.Run($"{location.Url}: cannot start the upload",
            async ct => (await client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = location.Bucket, Key = location.Key }, ct).ConfigureAwait(false)).UploadId,
            S3Errors.Classify);
        return new S3MultipartUploadStream(client, location, retry, uploadId, maxInFlight, warn);
    }

    /// <summary>Size of part number <paramref name="partNumber"/> (1-based).</summary>
    public static int PartSize(int partNumber) => BasePartSize << Math.Min((partNumber - 1) / PartsPerSize, MaxSizeDoublings);

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            throw new InvalidOperationException($"{Location}: the upload is complete");
        }

        while (!buffer.IsEmpty)
        {
            int n = Math.Min(buffer.Length, _part.Length - _filled);
            buffer[..n].CopyTo(_part.AsSpan(_filled));
            _filled += n;
            _position += n;
            buffer = buffer[n..];
            if (_filled == _part.Length)
            {
                SendPart();
            }
        }
    }

    /// <inheritdoc/>
    public override void WriteByte(byte value) => Write([value]);

    /// <inheritdoc/>
    public override void Flush()
    {
        // Parts go out when full (S3 parts but the last must be >= 5 MiB); Complete sends the rest.
    }

    /// <summary>
    /// Uploads the last part, waits for every part and completes the upload: only now does the object appear. Call
    /// it only when everything was written successfully.
    /// </summary>
    /// <exception cref="IOException">A part or the completion failed (the upload is aborted at Dispose).</exception>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            return;
        }

        if (_filled > 0 || _nextPart == 1)
        {
            SendPart();
        }

        while (_inFlight.Count > 0)
        {
            _done.Add(WaitOldest());
        }

        var request = new CompleteMultipartUploadRequest
        {
            BucketName = _location.Bucket,
            Key = _location.Key,
            UploadId = _uploadId,
            PartETags = [.. _done.OrderBy(p => p.PartNumber)],
            IfNoneMatch = "*",
        };
        _retry.Run($"{Location}: cannot complete the upload", ct => _client.CompleteMultipartUploadAsync(request, ct), e =>
            e is AmazonS3Exception { StatusCode: System.Net.HttpStatusCode.PreconditionFailed }
                ? new RemoteError(RemoteErrorKind.Final, "an object with this name appeared during the upload; it is not overwritten")
                : S3Errors.Classify(e));
        _completed = true;
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            if (!_completed)
            {
                Abort();
            }

            _abandon.Dispose();
        }

        base.Dispose(disposing);
    }

    private void SendPart()
    {
        int number = _nextPart;
        if (number > MaxParts)
        {
            throw new IOException($"{Location}: the image needs more than {MaxParts} upload parts");
        }

        while (_inFlight.Count >= _maxInFlight)
        {
            _done.Add(WaitOldest());
        }

        byte[] data = _part;
        int length = _filled;
        _nextPart++;
        _part = new byte[PartSize(_nextPart)];
        _filled = 0;
        long offset = _position - length;
        _inFlight.Enqueue(Task.Run(() => UploadPart(number, data, length, offset)));
    }

    private Task<PartETag> UploadPart(int number, byte[] data, int length, long offset)
    {
        // Content-MD5 on every part: the store refuses a part damaged on the way (a proxy, a bad NIC) instead of keeping
        // it, since checksums are otherwise off (WHEN_REQUIRED, which small S3 servers need). Computed once per part.
        string md5 = Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(data.AsSpan(0, length)));
        return _retry.RunAsync($"{Location}: upload of part {number} ({length} bytes at offset {offset})", async ct =>
        {
            using var body = new MemoryStream(data, 0, length, writable: false);
            var request = new UploadPartRequest
            {
                BucketName = _location.Bucket,
                Key = _location.Key,
                UploadId = _uploadId,
                PartNumber = number,
                PartSize = length,
                InputStream = body,
                UseChunkEncoding = false,
                MD5Digest = md5,
            };
            var response = await _client.UploadPartAsync(request, ct).ConfigureAwait(false);
            return new PartETag(number, response.ETag);
        }, S3Errors.Classify, _abandon.Token);
    }

    private PartETag WaitOldest()
    {
        var task = _inFlight.Dequeue();
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch
        {
            // The first failure stands; the other parts are waited for in Abort.
            _inFlight.Enqueue(task);
            throw;
        }
    }

    private void Abort()
    {
        _abandon.Cancel(); // parts still uploading stop now: their bytes are not wanted any more
        foreach (var task in _inFlight)
        {
            try
            {
                task.Wait();
            }
            catch (AggregateException)
            {
                // Already reported (or irrelevant: the upload is being abandoned).
            }
        }

        _inFlight.Clear();
        try
        {
            _retry.Run($"{Location}: cannot abort the unfinished upload", ct => _client.AbortMultipartUploadAsync(
                new AbortMultipartUploadRequest { BucketName = _location.Bucket, Key = _location.Key, UploadId = _uploadId }, ct), S3Errors.Classify);
        }
        catch (IOException e)
        {
            _warn?.Invoke($"{e.Message}; it never becomes a visible object, and a lifecycle rule (AbortIncompleteMultipartUpload) removes its parts");
        }
    }
}
