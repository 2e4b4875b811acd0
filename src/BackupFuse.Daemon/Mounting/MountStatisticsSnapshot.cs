using BackupFuse.BackupImage.Storage.Caching;

namespace BackupFuse.Daemon.Mounting;

/// <summary>What a mount's daemon publishes for <c>backupfuse status</c> (the JSON file MountStatistics writes).</summary>
public sealed record MountStatisticsSnapshot
{
    /// <summary>The mount point.</summary>
    public required string MountPoint { get; init; }

    /// <summary>The daemon's process id (a file whose process is gone is stale).</summary>
    public required int ProcessId { get; init; }

    /// <summary>When the file was written.</summary>
    public required DateTime UpdatedUtc { get; init; }

    /// <summary>The persistent cache of remote image bytes, when the mount has one.</summary>
    public ImageCacheStatistics? RemoteCache { get; init; }

    /// <summary>The remote cache's directory (a private temporary one when the configured one was locked).</summary>
    public string? RemoteCacheDirectory { get; init; }

    /// <summary>Bytes of decompressed chunks and index pages the memory cache holds.</summary>
    public long MemoryCacheHeldBytes { get; init; }

    /// <summary>The memory cache's bound (--cache-size).</summary>
    public long MemoryCacheCapacityBytes { get; init; }

    /// <summary>Blocks the memory cache dropped to stay within its bound.</summary>
    public long MemoryCacheEvictions { get; init; }

    /// <summary>Block reads of every plugin answered from the memory cache.</summary>
    public long MemoryCacheHits { get; init; }

    /// <summary>Block reads of every plugin that had to be loaded (decompressed, fetched).</summary>
    public long MemoryCacheMisses { get; init; }

    /// <summary>Block reads that waited for a load another reader had started.</summary>
    public long MemoryCacheWaits { get; init; }
}
