using System.Diagnostics;
using System.Runtime.CompilerServices;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - A small LRU of parsed index pages, bounded by a page count, shared by all reader threads of one image.
// - One lock guards the map and the recency list; loading a page happens outside the lock, so two threads that miss
//   the same page may both load it (the second result is dropped). That is cheaper than a per-page lock and harmless.
// - The pages' bytes (a parsed page of 1024 entries is about 64 KiB) are drawn from a CacheBudget (the process's by
//   default, shared with the mount's block caches), so 64 open plugins over large images cannot hold 64 x 64 pages
//   beyond the mount's --cache-size. Under pressure the budget evicts pages of idle images as it evicts blocks; when
//   it can make no room the page is returned uncached (the read still works). A member of the budget: eviction by
//   another thread only tries the lock, and Dispose gives every byte back.

/// <summary>Bounded, thread-safe LRU cache of parsed index pages.</summary>
internal sealed class IndexPageCache : ICacheBudgetMember, IDisposable
{
    private readonly Dictionary<uint, LinkedListNode<Page>> _map = [];
    private readonly LinkedList<Page> _recency = new();
    private readonly object _lock = new();
    private readonly int _capacity;
    private readonly CacheBudget _budget;
    private long _bytesHeld;
    private bool _disposed;
    private long _oldestUse = long.MaxValue;

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
                return _map.Count;
            }
        }
    }

    /// <inheritdoc/>
    public long OldestUse => Volatile.Read(ref _oldestUse);

    /// <summary>What a parsed page costs in memory (the array and its header).</summary>
    public static long BytesOf(ChunkEntry[] entries) => ((long)entries.Length * Unsafe.SizeOf<ChunkEntry>()) + 32;

    public ChunkEntry[] GetOrLoad(uint page, Func<uint, ChunkEntry[]> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        lock (_lock)
        {
            if (_map.TryGetValue(page, out var node))
            {
                _recency.Remove(node);
                node.ValueRef.LastUse = Stopwatch.GetTimestamp();
                _recency.AddFirst(node);
                UpdateOldest();
                return node.Value.Entries;
            }
        }

        var entries = load(page);
        long bytes = BytesOf(entries);
        lock (_lock)
        {
            if (_map.TryGetValue(page, out var existing))
            {
                return existing.Value.Entries;
            }

            if (_disposed || !_budget.TryTake(bytes))
            {
                return entries; // no room in the budget: serve it uncached
            }

            _map[page] = _recency.AddFirst(new Page(page, entries, bytes, Stopwatch.GetTimestamp()));
            _bytesHeld += bytes;
            while (_map.Count > _capacity)
            {
                RemoveLast();
            }

            UpdateOldest();
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
            if (_recency.Count == 0)
            {
                return false;
            }

            RemoveLast();
            UpdateOldest();
            return true;
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
            _map.Clear();
            _recency.Clear();
            _bytesHeld = 0;
            _budget.Release(released);
            UpdateOldest();
        }

        _budget.Unregister(this, released);
    }

    private void RemoveLast()
    {
        var last = _recency.Last!.Value;
        _recency.RemoveLast();
        _map.Remove(last.Number);
        _bytesHeld -= last.Bytes;
        _budget.Release(last.Bytes);
    }

    private void UpdateOldest() => Volatile.Write(ref _oldestUse, _recency.Last?.Value.LastUse ?? long.MaxValue);

    private record struct Page(uint Number, ChunkEntry[] Entries, long Bytes, long LastUse);
}
