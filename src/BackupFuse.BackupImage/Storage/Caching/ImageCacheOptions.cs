namespace BackupFuse.BackupImage.Storage.Caching;

/// <summary>Settings of an <see cref="ImageCache"/>; the defaults suit object storage with some 20 ms per request.</summary>
public sealed record ImageCacheOptions
{
    /// <summary>Default bound on the bytes the cache keeps on disk (10 GiB).</summary>
    public const long DefaultCapacityBytes = 10L << 30;

    /// <summary>The cache directory of root's daemon when none is given.</summary>
    public const string DefaultRootDirectory = "/var/cache/backupfuse/remote";

    /// <summary>Size of the checksummed sectors inside a cache block (64 KiB).</summary>
    public const int SectorSize = 64 << 10;

    /// <summary>Bound on the bytes kept on disk (block sizes rounded up to 4 KiB); at least 4 blocks.</summary>
    public long CapacityBytes { get; init; } = DefaultCapacityBytes;

    /// <summary>Cache block size: a power of two from 64 KiB to 16 MiB; blocks are aligned in the object (default 1 MiB).</summary>
    public int BlockSize { get; init; } = 1 << 20;

    /// <summary>Largest single read of the inner object: adjacent missing blocks are coalesced up to this (default 8 MiB).</summary>
    public int MaxRequestBytes { get; init; } = 8 << 20;

    /// <summary>Largest readahead window of a sequential stream (default 64 MiB; 0 turns readahead off).</summary>
    public int MaxReadaheadBytes { get; init; } = 64 << 20;

    /// <summary>Most bytes the <see cref="IImageObject.Prefetch"/> hints of one object fetch together (default 64 MiB; also at most a quarter of the capacity).</summary>
    public long MaxPrefetchBytes { get; init; } = 64L << 20;

    /// <summary>Background fetches (readahead, prefetch) running at once, for the whole cache (default 8: enough requests in flight to cover a 20 ms round trip at several hundred MiB/s).</summary>
    public int BackgroundFetches { get; init; } = 8;

    /// <summary>How often the presence index is made durable when it changed (default 5 s; also at dispose).</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Bound of the private temporary cache used when the directory is locked by another process (default 1 GiB).</summary>
    public long PrivateCapacityBytes { get; init; } = 1L << 30;

    /// <summary>Receives one-line warnings (cache directory locked, index unreadable, cache writes failing).</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>
    /// The default cache directory: <see cref="DefaultRootDirectory"/> for root, else
    /// $XDG_CACHE_HOME/backupfuse/remote (default ~/.cache/backupfuse/remote).
    /// </summary>
    public static string DefaultDirectory()
    {
        if (CacheNative.Geteuid() == 0)
        {
            return DefaultRootDirectory;
        }

        string? cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(cache) || !Path.IsPathRooted(cache))
        {
            cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        }

        return Path.Combine(cache, "backupfuse", "remote");
    }

    internal void Validate()
    {
        if (BlockSize < SectorSize || BlockSize > (16 << 20) || (BlockSize & (BlockSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(BlockSize), BlockSize, "cache block size must be a power of two from 64 KiB to 16 MiB");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(CapacityBytes, 4L * BlockSize, nameof(CapacityBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxRequestBytes, BlockSize, nameof(MaxRequestBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxReadaheadBytes, nameof(MaxReadaheadBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxPrefetchBytes, nameof(MaxPrefetchBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(BackgroundFetches, 1, nameof(BackgroundFetches));
        ArgumentOutOfRangeException.ThrowIfLessThan(PrivateCapacityBytes, 4L * BlockSize, nameof(PrivateCapacityBytes));
    }
}
