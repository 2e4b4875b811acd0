using System.CommandLine;
using BackupFuse.Remote;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - The S3 options every command accepts (recursive on the root): the endpoint and path-style addressing. Nothing
//   secret is ever an option: credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID /
//   AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, SSO, container and instance roles), so they never show in `ps`,
//   and the daemon started in the background inherits them through its environment. An endpoint URL with user info
//   or a query string is refused for the same reason.
// - One RemoteStores per process (a command runs once per process; the mount daemon keeps it for its lifetime):
//   connections are pooled across every repository. Options.WrapObject is where the persistent cache plugs in.

/// <summary><c>--s3-endpoint URL</c> and <c>--s3-path-style</c>, and the process's remote stores.</summary>
public static class RemoteOptions
{
    /// <summary><c>--s3-endpoint URL</c>: an S3-compatible server (MinIO, Ceph RGW, ...).</summary>
    public static readonly Option<string?> S3Endpoint = new("--s3-endpoint")
    {
        Description = "S3-compatible endpoint for s3:// addresses, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL_S3, else AWS). " +
            "Path-style addressing is used with an endpoint. Credentials come from the environment or profile, never from options.",
        Recursive = true,
    };

    /// <summary><c>--s3-path-style</c>: path-style addressing on AWS too.</summary>
    public static readonly Option<bool> S3PathStyle = new("--s3-path-style")
    {
        Description = "Address buckets by path (https://endpoint/BUCKET/KEY) instead of by host name; always on with --s3-endpoint.",
        Recursive = true,
    };

    private static readonly object Lock = new();
    private static RemoteStores? _stores;

    /// <summary>Hook for the lead/cache: wraps every remote object opened (set before the first remote open).</summary>
    public static Func<BackupFuse.BackupImage.Storage.IImageObject, BackupFuse.BackupImage.Storage.IImageObject>? WrapObject { get; set; }

    /// <summary>The options the command line gives.</summary>
    /// <exception cref="CliError">The endpoint is not a plain http(s) URL.</exception>
    public static RemoteRepositoryOptions From(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var options = new RemoteRepositoryOptions
        {
            S3Endpoint = parse.GetValue(S3Endpoint),
            S3PathStyle = parse.GetValue(S3PathStyle),
            WrapObject = WrapObject,
        };
        if (options.EffectiveS3Endpoint is { } endpoint)
        {
            string source = options.S3Endpoint != null ? "--s3-endpoint" : "AWS_ENDPOINT_URL_S3";
            try
            {
                if (RemoteLocation.Parse(endpoint).Kind != RemoteKind.Http)
                {
                    throw new CliError($"{source} {endpoint}: must be an http:// or https:// URL");
                }
            }
            catch (FormatException e)
            {
                throw new CliError($"{source}: {e.Message}");
            }
        }

        return options;
    }

    /// <summary>The process's remote stores, made on first use from <paramref name="parse"/>.</summary>
    public static RemoteStores Stores(ParseResult parse)
    {
        lock (Lock)
        {
            return _stores ??= new RemoteStores(From(parse));
        }
    }
}
