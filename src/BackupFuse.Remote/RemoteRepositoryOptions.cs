using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

/// <summary>How remote repositories are reached: S3 endpoint and addressing, retries, and a wrapper for every object opened.</summary>
public sealed record RemoteRepositoryOptions
{
    /// <summary>
    /// The S3 endpoint URL (MinIO, Ceph RGW, ...); null for AWS itself, then AWS_ENDPOINT_URL_S3 is used when set.
    /// </summary>
    public string? S3Endpoint { get; init; }

    /// <summary>Path-style addressing (http://endpoint/BUCKET/KEY). Always on when an endpoint is given.</summary>
    public bool S3PathStyle { get; init; }

    /// <summary>The region; null: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1.</summary>
    public string? S3Region { get; init; }

    /// <summary>Retries and timeouts of reads and listings.</summary>
    public RetryPolicy Retry { get; init; } = RetryPolicy.Default;

    /// <summary>Retries and timeouts of uploaded parts (longer attempts: a part is several MiB).</summary>
    public RetryPolicy UploadRetry { get; init; } = new() { RequestTimeout = TimeSpan.FromMinutes(2), Deadline = TimeSpan.FromMinutes(5) };

    /// <summary>
    /// Wraps every remote object a repository opens (e.g. a persistent local cache); null leaves them as they are. The
    /// wrapper owns the object it is given.
    /// </summary>
    public Func<IImageObject, IImageObject>? WrapObject { get; init; }

    /// <summary>The endpoint in force: <see cref="S3Endpoint"/>, else AWS_ENDPOINT_URL_S3, else null (AWS).</summary>
    public string? EffectiveS3Endpoint =>
        !string.IsNullOrEmpty(S3Endpoint) ? S3Endpoint
        : Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL_S3") is { Length: > 0 } env ? env
        : null;

    /// <summary>
    /// <paramref name="wrap"/> applied to <paramref name="image"/> (or the image itself without one); when the wrapper
    /// throws, the image is disposed, so nothing leaks.
    /// </summary>
    public static IImageObject Wrap(Func<IImageObject, IImageObject>? wrap, IImageObject image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (wrap == null)
        {
            return image;
        }

        try
        {
            return wrap(image);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }
}
