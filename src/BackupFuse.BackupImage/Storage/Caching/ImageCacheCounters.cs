namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The running counters behind ImageCacheStatistics: each one is Interlocked (exact on its own), the set is not
//   atomic (a snapshot may mix a read's hit with the previous read's bytes). Nothing here takes the cache's lock.
// - Thread-safe.

/// <summary>The counters of an <see cref="ImageCache"/> since it was opened.</summary>
internal sealed class ImageCacheCounters
{
    private long _hits;
    private long _misses;
    private long _bytesFetched;
    private long _innerRequests;
    private long _bytesServed;
    private long _readaheadBytes;
    private long _damaged;
    private long _evictions;

    /// <summary>Counts block reads served from the cache file.</summary>
    public void CountHit(int blocks) => Interlocked.Add(ref _hits, blocks);

    /// <summary>Counts block reads that fetched from the inner object.</summary>
    public void CountMiss(int blocks) => Interlocked.Add(ref _misses, blocks);

    /// <summary>Counts one read of an inner object of <paramref name="bytes"/> (<paramref name="background"/>: readahead or prefetch).</summary>
    public void AddFetched(long bytes, bool background)
    {
        Interlocked.Add(ref _bytesFetched, bytes);
        Interlocked.Increment(ref _innerRequests);
        if (background)
        {
            Interlocked.Add(ref _readaheadBytes, bytes);
        }
    }

    /// <summary>Counts bytes copied from the cache file to a reader.</summary>
    public void AddServed(long bytes) => Interlocked.Add(ref _bytesServed, bytes);

    /// <summary>Counts a block dropped as damaged.</summary>
    public void CountDamaged() => Interlocked.Increment(ref _damaged);

    /// <summary>Counts a block evicted to keep the bound.</summary>
    public void CountEviction() => Interlocked.Increment(ref _evictions);

    /// <summary>The counters now, with the figures only the cache knows.</summary>
    public ImageCacheStatistics Snapshot(long storedBytes, long capacityBytes, bool isPrivate) => new(
        Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _bytesFetched), Interlocked.Read(ref _innerRequests),
        Interlocked.Read(ref _bytesServed), Interlocked.Read(ref _readaheadBytes), Interlocked.Read(ref _damaged), Interlocked.Read(ref _evictions),
        storedBytes, capacityBytes, isPrivate);
}
