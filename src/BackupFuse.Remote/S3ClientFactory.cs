using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.S3;

namespace BackupFuse.Remote;

// Design notes:
// - One place builds the S3 client, with the settings small S3-compatible servers need (docs/remote.md):
//   checksums only when the operation requires them (RequestChecksumCalculation/ResponseChecksumValidation =
//   WHEN_REQUIRED; recent SDKs otherwise send CRC trailers that s3rver and older MinIO/Ceph reject), and the
//   uploads set UseChunkEncoding = false (no aws-chunked bodies). The SDK's own retries are off (MaxErrorRetry = 0):
//   RetryPolicy retries every request, with one deadline.
// - Credentials: the SDK's default chain (environment, shared profile/SSO, container and instance roles). They are
//   never read, printed or stored here.
// - Endpoint: --s3-endpoint, else AWS_ENDPOINT_URL_S3, else AWS. With an endpoint, path-style addressing is used
//   (every S3-compatible server accepts it; virtual-hosted names need wildcard DNS); --s3-path-style turns it on
//   for AWS too. An endpoint URL with user info or a query is refused (it would show in `ps`).
// - Region: the option, AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1 (no instance-metadata
//   lookup: that may take seconds off EC2).

/// <summary>Builds the S3 client for <see cref="RemoteRepositoryOptions"/>.</summary>
public static class S3ClientFactory
{
    /// <summary>The region in force for <paramref name="options"/>.</summary>
    public static string Region(RemoteRepositoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!string.IsNullOrEmpty(options.S3Region))
        {
            return options.S3Region;
        }

        foreach (var name in new[] { "AWS_REGION", "AWS_DEFAULT_REGION" })
        {
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } value)
            {
                return value;
            }
        }

        try
        {
            string profile = Environment.GetEnvironmentVariable("AWS_PROFILE") is { Length: > 0 } p ? p : "default";
            if (new CredentialProfileStoreChain().TryGetProfile(profile, out var found) && found.Region != null)
            {
                return found.Region.SystemName;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or AmazonClientException)
        {
            // An unreadable profile file: the default region below.
        }

        return "us-east-1";
    }

    /// <summary>A client for <paramref name="options"/>.</summary>
    /// <exception cref="FormatException">The endpoint is not a plain http(s) URL.</exception>
    public static AmazonS3Client Create(RemoteRepositoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string region = Region(options);
        var config = new AmazonS3Config
        {
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            MaxErrorRetry = 0,
            Timeout = options.UploadRetry.RequestTimeout,
            ForcePathStyle = options.S3PathStyle,
        };
        if (options.EffectiveS3Endpoint is { } endpoint)
        {
            var parsed = RemoteLocation.Parse(endpoint); // refuses user info and queries
            if (parsed.Kind != RemoteKind.Http)
            {
                throw new FormatException($"--s3-endpoint {endpoint}: must be an http:// or https:// URL");
            }

            config.ServiceURL = parsed.Url;
            config.AuthenticationRegion = region;
            config.ForcePathStyle = true;
        }
        else
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(region);
        }

        return new AmazonS3Client(config);
    }
}
