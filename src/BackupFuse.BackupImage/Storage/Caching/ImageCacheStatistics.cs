namespace BackupFuse.BackupImage.Storage.Caching;

/// <summary>Counters of an <see cref="ImageCache"/> since it was opened (a snapshot; each counter is exact, the set is not atomic).</summary>
/// <param name="Hits">Block reads served from the cache file (including blocks a readahead or another reader had fetched).</param>
/// <param name="Misses">Block reads that had to fetch the block from the inner object themselves.</param>
/// <param name="BytesFetched">Bytes read from inner objects (reads, readahead, prefetch, headers).</param>
/// <param name="InnerRequests">Reads of inner objects.</param>
/// <param name="BytesServedFromCache">Bytes copied from the cache file into readers' buffers.</param>
/// <param name="ReadaheadBytes">Bytes fetched in the background (readahead and prefetch), part of <paramref name="BytesFetched"/>.</param>
/// <param name="DamagedBlocks">Blocks dropped because their bytes failed a checksum (the cache's or the reader's, via Refetch).</param>
/// <param name="Evictions">Blocks dropped to keep the bound.</param>
/// <param name="StoredBytes">Bytes of blocks held on disk now (rounded up to 4 KiB per block).</param>
/// <param name="CapacityBytes">The bound on <paramref name="StoredBytes"/>.</param>
/// <param name="IsPrivate">Whether this is a private temporary cache (the directory was locked by another process).</param>
public readonly record struct ImageCacheStatistics(
    long Hits,
    long Misses,
    long BytesFetched,
    long InnerRequests,
    long BytesServedFromCache,
    long ReadaheadBytes,
    long DamagedBlocks,
    long Evictions,
    long StoredBytes,
    long CapacityBytes,
    bool IsPrivate)
{
    /// <summary>Hits / (hits + misses), or 0 before the first read.</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}
