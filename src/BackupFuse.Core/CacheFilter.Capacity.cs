using System.Buffers;

namespace BackupFuse.Core;

// Design notes: the byte bound of the cache (CacheFilter.cs has the whole design). A block's buffer is reserved before
// it is loaded: under the filter's lock, least recently used unpinned blocks are evicted until it fits the capacity,
// and with a shared CacheBudget the bytes are also taken from the budget (which may evict another member's oldest
// block). Every path that gives up a buffer goes through ReturnBuffer, once per entry, so the bytes held and the
// budget's share always match the buffers out of the pool.

/// <summary>The capacity side of the block cache: reserving, evicting and returning block buffers.</summary>
public sealed partial class CacheFilter
{
    /// <summary>Under the lock: makes room (evicting) and adds a Loading entry for the block; false when all is pinned.</summary>
    private bool TryReserve(long block, int length, out CacheEntry created)
    {
        created = null!;
        if (_blockSize > _capacity || _disposed)
        {
            return false;
        }

        while (_bytesHeld + _blockSize > _capacity)
        {
            if (!EvictOldest())
            {
                return false;
            }
        }

        if (_budget != null && !_budget.TryTake(_blockSize))
        {
            return false;
        }

        _bytesHeld += _blockSize;
        created = new CacheEntry(this, block, ArrayPool<byte>.Shared.Rent(_blockSize), length);
        _lru.Add(created);
        return true;
    }

    /// <summary>Under the lock: drops the least recently used unpinned block; false when there is none.</summary>
    private bool EvictOldest()
    {
        if (!_lru.TryEvictOldest(out var victim))
        {
            return false;
        }

        ReturnBuffer(victim);
        _evictions++;
        return true;
    }

    /// <inheritdoc/>
    bool ICacheBudgetMember.TryEvictOldest()
    {
        // Never block: the budget calls this from another member's thread, which holds that member's lock.
        if (!Monitor.TryEnter(_lock))
        {
            return false;
        }

        try
        {
            return !_disposed && EvictOldest();
        }
        finally
        {
            Monitor.Exit(_lock);
        }
    }

    private void ReturnBuffer(CacheEntry e)
    {
        if (e.BufferReturned)
        {
            return;
        }

        e.BufferReturned = true;
        _bytesHeld -= _blockSize;
        _budget?.Release(_blockSize);
        ArrayPool<byte>.Shared.Return(e.Buffer);
    }
}
