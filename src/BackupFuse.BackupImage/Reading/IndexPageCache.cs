using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - A small LRU of parsed index pages, bounded by a page count, shared by all reader threads of one image.
// - One lock guards the map and the recency list; loading a page happens outside the lock, so two threads that miss
//   the same page may both load it (the second result is dropped). That is cheaper than a per-page lock and harmless.

/// <summary>Bounded, thread-safe LRU cache of parsed index pages.</summary>
internal sealed class IndexPageCache(int capacity)
{
    private readonly Dictionary<uint, LinkedListNode<(uint Page, ChunkEntry[] Entries)>> _map = [];
    private readonly LinkedList<(uint Page, ChunkEntry[] Entries)> _recency = new();
    private readonly object _lock = new();

    public ChunkEntry[] GetOrLoad(uint page, Func<uint, ChunkEntry[]> load)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(page, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                return node.Value.Entries;
            }
        }

        var entries = load(page);
        lock (_lock)
        {
            if (_map.TryGetValue(page, out var existing))
            {
                return existing.Value.Entries;
            }

            _map[page] = _recency.AddFirst((page, entries));
            while (_map.Count > capacity)
            {
                var last = _recency.Last!;
                _recency.RemoveLast();
                _map.Remove(last.Value.Page);
            }
        }

        return entries;
    }
}
