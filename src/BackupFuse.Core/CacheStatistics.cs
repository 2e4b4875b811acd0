namespace BackupFuse.Core;

/// <summary>Counters of a <see cref="CacheFilter"/> (a snapshot; each counter is exact, the set is not atomic).</summary>
/// <param name="Hits">Blocks served from the cache (including blocks a readahead had already loaded).</param>
/// <param name="Misses">Blocks a reader had to load (into the cache or straight into its buffer).</param>
/// <param name="CoalescedWaits">Blocks a reader waited for because another thread was already loading them.</param>
/// <param name="ReadaheadLoads">Blocks loaded ahead of a sequential stream.</param>
/// <param name="ZeroBlocks">Blocks answered as zeros from the layer's extents, without a load.</param>
/// <param name="Evictions">Blocks dropped to stay within the capacity.</param>
/// <param name="BytesCached">Bytes of block buffers the cache holds now (loaded or loading).</param>
/// <param name="CapacityBytes">The bound on <paramref name="BytesCached"/>.</param>
public readonly record struct CacheStatistics(
    long Hits,
    long Misses,
    long CoalescedWaits,
    long ReadaheadLoads,
    long ZeroBlocks,
    long Evictions,
    long BytesCached,
    long CapacityBytes);
