using System.Net;
using Amazon.S3;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - The clients of one process (the CLI command or the daemon): one S3 client and one HttpClient, made on first use
//   and shared by every repository and object, so connections are pooled and nothing is built for a kind of store
//   that is not used (an HTTP-only mount never looks for AWS credentials).
// - HttpClient: no redirects (the URL named is the URL read: the roots rule holds), no decompression (ranges are of
//   the stored bytes), a connect timeout, and no overall timeout (RetryPolicy times each attempt). HTTPS trusts the
//   system's CA store; a private CA is added with SSL_CERT_FILE / SSL_CERT_DIR (OpenSSL's variables, which .NET
//   honours on Linux).
// - Thread-safe (Lazy). Dispose only when no repository or object of it is used any more.

/// <summary>Makes repositories and upload streams for remote locations, sharing one client per kind of store.</summary>
public sealed class RemoteStores : IDisposable
{
    private readonly Lazy<AmazonS3Client> _s3;
    private readonly Lazy<HttpClient> _http;

    /// <summary>Stores reached with <paramref name="options"/>.</summary>
    public RemoteStores(RemoteRepositoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _s3 = new Lazy<AmazonS3Client>(() => S3ClientFactory.Create(options));
        _http = new Lazy<HttpClient>(() => new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            MaxConnectionsPerServer = 64,
            UseCookies = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        });
    }

    /// <summary>The options every repository of these stores uses.</summary>
    public RemoteRepositoryOptions Options { get; }

    /// <summary>The S3 client (made on first use).</summary>
    /// <exception cref="FormatException">The endpoint option is not a plain http(s) URL.</exception>
    public IAmazonS3 S3 => _s3.Value;

    /// <summary>The repository at <paramref name="root"/> (an s3:// prefix or http(s) directory, or one image URL).</summary>
    /// <exception cref="FormatException">Not a valid remote location.</exception>
    public IImageRepository Repository(string root)
    {
        var location = RemoteLocation.ParseRoot(root);
        return location.Kind == RemoteKind.S3 ? new S3Repository(_s3.Value, _http.Value, location, Options) : new HttpRepository(_http.Value, location, Options);
    }

    /// <summary>
    /// Starts writing a new image at <paramref name="destination"/> (s3:// only: HTTP stores are read-only).
    /// </summary>
    /// <exception cref="IOException">The destination exists, is not writable, or is an HTTP URL.</exception>
    public S3MultipartUploadStream Upload(string destination, Action<string>? warn = null)
    {
        var location = RemoteLocation.Parse(destination);
        if (location.Kind != RemoteKind.S3)
        {
            throw new IOException($"{location.Url}: HTTP(S) repositories are read-only; back up to a local file or to s3://BUCKET/PREFIX/NAME.bfi");
        }

        return S3MultipartUploadStream.Begin(_s3.Value, location, Options.UploadRetry, warn: warn);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_s3.IsValueCreated)
        {
            _s3.Value.Dispose();
        }

        if (_http.IsValueCreated)
        {
            _http.Value.Dispose();
        }
    }
}
