namespace BackupFuse.Core.FileSystems;

// Design notes:
// - What the synthesized file systems build per directory (FAT32: the directory's bytes; exFAT: its listing) for the
//   directories read recently, least recently used dropped first, bounded by the total of sizeOf (at least the newest
//   one is kept). One lock, never held while building; values are never changed after being added, so readers use
//   them outside the lock. Two threads may build the same directory at once: the
//   results are identical (deterministic), the second one simply replaces the first.

/// <summary>A byte-bounded LRU of what is built per directory, keyed by tree entry.</summary>
/// <typeparam name="T">What is built (immutable once built).</typeparam>
internal sealed class DirectoryCache<T>(long maxBytes, Func<T, long> sizeOf)
    where T : class
{
    private readonly Lock _lock = new();
    private readonly LinkedList<(int Entry, T Value)> _order = new();
    private readonly Dictionary<int, LinkedListNode<(int Entry, T Value)>> _map = [];
    private long _bytes;

    /// <summary>What directory <paramref name="entry"/> holds, built by <paramref name="build"/> when not cached.</summary>
    public T Get(int entry, Func<int, T> build)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(entry, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                return node.Value.Value;
            }
        }

        T value = build(entry);
        lock (_lock)
        {
            if (_map.Remove(entry, out var old))
            {
                _order.Remove(old);
                _bytes -= sizeOf(old.Value.Value);
            }

            _map[entry] = _order.AddFirst((entry, value));
            _bytes += sizeOf(value);
            while (_bytes > maxBytes && _order.Count > 1)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Entry);
                _bytes -= sizeOf(last.Value.Value);
            }
        }

        return value;
    }
}
