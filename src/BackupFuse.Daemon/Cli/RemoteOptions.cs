using System.CommandLine;
using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Storage.Caching;
using BackupFuse.Remote;
using Serilog;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - The S3 options every command accepts (recursive on the root): the endpoint and path-style addressing. Nothing
//   secret is ever an option: credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID /
//   AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, SSO, container and instance roles), so they never show in `ps`,
//   and the daemon started in the background inherits them through its environment. An endpoint URL with user info
//   or a query string is refused for the same reason.
// - One RemoteStores per process (a command runs once per process; the mount daemon keeps it for its lifetime):
//   connections are pooled across every repository. Options.WrapObject is where the persistent cache plugs in.
// - The persistent cache (--cache-dir, --cache-dir-size; ImageCache) is opened on the first remote object, not
//   before: a command without remote images never touches the cache directory, and a mount opens it in the daemon
//   process (after it went to the background), which then holds its lock for its whole life. One cache per process;
//   every repository and every chain shares it, so the backup points of one chain share the parent's cached bytes.

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

    /// <summary><c>--cache-dir DIR</c>: where fetched remote image bytes are kept across runs.</summary>
    public static readonly Option<string?> CacheDir = new("--cache-dir")
    {
        Description = "Persistent cache of remote image bytes, shared by every backup point and kept across mounts " +
            $"(default {ImageCacheOptions.DefaultRootDirectory} for root, ~/.cache/backupfuse/remote otherwise; 'none' for no cache). " +
            "Images never change, so entries never go stale; damaged entries are detected by the chunk checksums and fetched again.",
        Recursive = true,
    };

    /// <summary><c>--cache-dir-size SIZE</c>: the bound of the persistent cache.</summary>
    public static readonly Option<long?> CacheDirSize = RecursiveOption(ByteSizeOption.Create("--cache-dir-size",
        $"Most bytes kept in --cache-dir, e.g. 2G, 500G (default {ImageCacheOptions.DefaultCapacityBytes >> 30}G); the least recently used are dropped first."));

    private static readonly object Lock = new();
    private static RemoteStores? _stores;
    private static Lazy<ImageCache?>? _cache;

    /// <summary>The persistent cache, once a remote object has opened it (else null).</summary>
    public static ImageCache? Cache => _cache is { IsValueCreated: true } c ? c.Value : null;

    /// <summary>The options the command line gives.</summary>
    /// <exception cref="CliError">The endpoint is not a plain http(s) URL.</exception>
    public static RemoteRepositoryOptions From(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var options = new RemoteRepositoryOptions
        {
            S3Endpoint = parse.GetValue(S3Endpoint),
            S3PathStyle = parse.GetValue(S3PathStyle),
            WrapObject = CacheWrapper(parse),
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

    /// <summary>Closes the persistent cache (writes its index); the process ends soon after.</summary>
    public static void CloseCache()
    {
        lock (Lock)
        {
            Cache?.Dispose();
            _cache = null;
        }
    }

    private static Option<long?> RecursiveOption(Option<long?> option)
    {
        option.Recursive = true;
        return option;
    }

    private static Func<IImageObject, IImageObject>? CacheWrapper(ParseResult parse)
    {
        string? dir = parse.GetValue(CacheDir);
        if (dir == "none")
        {
            return null;
        }

        long capacity = parse.GetValue(CacheDirSize) ?? ImageCacheOptions.DefaultCapacityBytes;
        lock (Lock)
        {
            _cache ??= new Lazy<ImageCache?>(() => OpenCache(dir ?? ImageCacheOptions.DefaultDirectory(), capacity));
        }

        return image => _cache?.Value is { } cache ? cache.Wrap(image) : image;
    }

    private static ImageCache? OpenCache(string dir, long capacity)
    {
        try
        {
            var cache = ImageCache.Open(dir, new ImageCacheOptions { CapacityBytes = capacity, Warning = m => Log.Warning("{Warning}", m) });
            Log.Debug("remote image cache in {Dir}, at most {Capacity} bytes", cache.Directory, cache.CapacityBytes);
            return cache;
        }
        catch (IOException e)
        {
            // A cache that cannot be used costs speed, not correctness: say so once and read from the store directly.
            Log.Warning("--cache-dir {Dir}: {Reason}; remote images are read without a persistent cache", dir, e.Message);
            return null;
        }
    }
}
