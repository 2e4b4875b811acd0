namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - The synthesized bytes of recently read directories, least recently used dropped first, bounded by total bytes
//   (a directory has at most 2 MiB: 65536 entries of 32 bytes). One lock; the bytes are never changed after being
//   added, so readers copy from them outside the lock. Two threads may build the same directory at once: the
//   results are identical (deterministic), the second one simply replaces the first.

/// <summary>A byte-bounded LRU of synthesized directory contents, keyed by tree entry.</summary>
internal sealed class Fat32DirectoryCache(long maxBytes)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<(int Entry, byte[] Bytes)> _order = new();
    private readonly Dictionary<int, LinkedListNode<(int Entry, byte[] Bytes)>> _map = [];
    private long _bytes;

    /// <summary>The bytes of directory <paramref name="entry"/>, built by <paramref name="build"/> when not cached.</summary>
    public byte[] Get(int entry, Func<int, byte[]> build)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(entry, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                return node.Value.Bytes;
            }
        }

        byte[] bytes = build(entry);
        lock (_lock)
        {
            if (_map.Remove(entry, out var old))
            {
                _order.Remove(old);
                _bytes -= old.Value.Bytes.Length;
            }

            _map[entry] = _order.AddFirst((entry, bytes));
            _bytes += bytes.Length;
            while (_bytes > maxBytes && _order.Count > 1)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Entry);
                _bytes -= last.Value.Bytes.Length;
            }
        }

        return bytes;
    }
}
