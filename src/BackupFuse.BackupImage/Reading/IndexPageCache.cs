using System.Runtime.CompilerServices;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - An LRU of parsed index pages, bounded by a page count (BackupImageFile.DefaultPageCacheCapacity), shared by all
//   reader threads of one image.
// - The map and recency order are a BlockLru (Core, shared with the block cache); one lock guards it; loading a page happens outside the lock, so two threads that miss
//   the same page may both load it (the second result is dropped). That is cheaper than a per-page lock and harmless.
// - The pages' bytes (a parsed page of 1024 entries is about 64 KiB) are drawn from a CacheBudget (the process's by
//   default, shared with the mount's block caches), so 64 open plugins over large images cannot hold 64 x 1024 pages
//   beyond the mount's --cache-size. Under pressure the budget evicts pages of idle images as it evicts blocks; when
//   it can make no room the page is returned uncached (the read still works). A member of the budget: eviction by
//   another thread only tries the lock, and Dispose gives every byte back.

/// <summary>Bounded, thread-safe LRU cache of parsed index pages.</summary>
internal sealed class IndexPageCache : ICacheBudgetMember, IDisposable
{
    private readonly BlockLru<Page> _pages = new();
    private readonly object _lock = new();
    private readonly int _capacity;
    private readonly CacheBudget _budget;
    private long _bytesHeld;
    private bool _disposed;

    /// <summary>At most <paramref name="capacity"/> pages, their bytes drawn from <paramref name="budget"/> (default: the process's).</summary>
    public IndexPageCache(int capacity, CacheBudget? budget = null)
    {
        _capacity = capacity;
        _budget = budget ?? CacheBudget.Process;
        _budget.Register(this);
    }

    /// <summary>Bytes of the pages held now.</summary>
    public long BytesHeld => Interlocked.Read(ref _bytesHeld);

    /// <summary>Number of pages held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _pages.Count;
            }
        }
    }

    /// <inheritdoc/>
    public long OldestUse => _pages.OldestUse;

    /// <summary>What a parsed page costs in memory (the array and its header).</summary>
    public static long BytesOf(ChunkEntry[] entries) => ((long)entries.Length * Unsafe.SizeOf<ChunkEntry>()) + 32;

    public ChunkEntry[] GetOrLoad(uint page, Func<uint, ChunkEntry[]> load)
    {
        lock (_lock)
        {
            if (_pages.TryGet(page, out var hit))
            {
                _pages.Touch(hit);
                return hit.Entries;
            }
        }

        var entries = load(page);
        long bytes = BytesOf(entries);
        lock (_lock)
        {
            if (_pages.TryGet(page, out var existing))
            {
                return existing.Entries;
            }

            if (_disposed || !_budget.TryTake(bytes))
            {
                return entries; // no room in the budget: serve it uncached
            }

            var added = new Page(page, entries, bytes);
            _pages.Add(added);
            _pages.Publish(added);
            _bytesHeld += bytes;
            while (_pages.Count > _capacity && EvictOldest())
            {
            }
        }

        return entries;
    }

    /// <inheritdoc/>
    public bool TryEvictOldest()
    {
        if (!Monitor.TryEnter(_lock))
        {
            return false;
        }

        try
        {
            return EvictOldest();
        }
        finally
        {
            Monitor.Exit(_lock);
        }
    }

    /// <summary>Drops every page and gives its bytes back to the budget.</summary>
    public void Dispose()
    {
        long released;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            released = _bytesHeld;
            _pages.DetachAll();
            _bytesHeld = 0;
            _budget.Release(released);
        }

        _budget.Unregister(this, released);
    }

    private bool EvictOldest()
    {
        if (!_pages.TryEvictOldest(out var victim))
        {
            return false;
        }

        _bytesHeld -= victim.Bytes;
        _budget.Release(victim.Bytes);
        return true;
    }

    /// <summary>A parsed page in the recency order (pages are never pinned).</summary>
    private sealed class Page(uint number, ChunkEntry[] entries, long bytes) : BlockLruEntry(number)
    {
        public ChunkEntry[] Entries { get; } = entries;

        public long Bytes { get; } = bytes;
    }
}
