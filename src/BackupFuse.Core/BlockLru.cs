using System.Diagnostics;

namespace BackupFuse.Core;

// Design notes:
// - The bookkeeping of a block cache, without the blocks: an index (block number -> entry), a recency order (an
//   intrusive doubly linked list, most recently used at the head) and pin counts. CacheFilter uses it for decompressed
//   blocks; a remote byte cache (S3/HTTP ranges) can use it unchanged, with its own entry type.
// - Entries are the caller's objects (derived from BlockLruEntry, so a block costs one allocation: the entry is also
//   the caller's work item, buffer holder, ...). The values they hold are owned by the caller: the list never
//   allocates, frees or counts bytes; it tells the caller when an entry's value may be freed (TryEvictOldest returns
//   the victim; Unpin says when a detached entry lost its last pin).
// - Life of an entry: Add puts it in the index only (being filled: found by lookups, never evicted); Publish puts it
//   at the head of the recency order (complete: evictable once unpinned); Touch moves it to the head; Remove,
//   eviction or DetachAll detach it (out of the index and the order, for good). A detached entry is never re-added.
// - Invariants: an entry in the order is in the index under its block; an entry in the index is not detached; the
//   order holds only published entries; eviction never picks a pinned entry.
// - Eviction scans at most ScanLimit pinned entries from the tail before giving up (false), so a cache full of pinned
//   blocks costs a bounded scan per miss; the caller then goes around the cache.
// - Threading: not thread-safe; the owner's lock guards every call. The one exception is OldestUse, a hint read
//   without the lock (a racy read of the tail's stamp, for choosing whom a shared budget evicts from).
// - Not done: byte accounting and capacity (the caller decides when to evict), loading and waiting, nbdkit's
//   two-bitmap approximation of LRU (pins need per-entry state anyway, so an exact list costs nothing more).

/// <summary>An entry of a <see cref="BlockLru{TEntry}"/>: one block, with its pins and its place in the recency order.</summary>
public abstract class BlockLruEntry
{
    /// <summary>An entry for block number <paramref name="block"/>.</summary>
    protected BlockLruEntry(long block) => Block = block;

    /// <summary>The block number the entry is indexed under.</summary>
    public long Block { get; }

    /// <summary>How many users pin the entry (a pinned entry is never evicted).</summary>
    public int Pins { get; internal set; }

    /// <summary>Whether the entry has left the list for good (removed, evicted or dropped by <see cref="BlockLru{TEntry}.DetachAll"/>).</summary>
    public bool Detached { get; internal set; }

    /// <summary>Whether the entry is in the recency order (published and not detached).</summary>
    public bool InOrder { get; internal set; }

    /// <summary>The <see cref="Stopwatch.GetTimestamp"/> of the entry's last publish or touch.</summary>
    public long LastUse { get; internal set; }

    internal BlockLruEntry? Prev { get; set; }

    internal BlockLruEntry? Next { get; set; }
}

/// <summary>The index, recency order and pins of a block cache whose entries and values belong to the caller.</summary>
/// <typeparam name="TEntry">The caller's entry type.</typeparam>
public sealed class BlockLru<TEntry>
    where TEntry : BlockLruEntry
{
    /// <summary>Default bound on the pinned entries one eviction scans past.</summary>
    public const int DefaultScanLimit = 64;

    private readonly Dictionary<long, TEntry> _index = [];
    private readonly int _scanLimit;
    private BlockLruEntry? _head;
    private BlockLruEntry? _tail;

    /// <summary>An empty list whose evictions scan past at most <paramref name="scanLimit"/> pinned entries.</summary>
    public BlockLru(int scanLimit = DefaultScanLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(scanLimit);
        _scanLimit = scanLimit;
    }

    /// <summary>Entries in the index (being filled or published).</summary>
    public int Count => _index.Count;

    /// <summary>The entries in the index, in no particular order (do not change the list while enumerating).</summary>
    public IReadOnlyCollection<TEntry> Entries => _index.Values;

    /// <summary>
    /// The last-use stamp of the least recently used published entry, or <see cref="long.MaxValue"/> when there is
    /// none. The only member that may be read without the owner's lock (then it is a hint, not a promise).
    /// </summary>
    public long OldestUse => Volatile.Read(ref _tail)?.LastUse ?? long.MaxValue;

    /// <summary>The most recently used published entry, if any.</summary>
    public TEntry? MostRecent => (TEntry?)_head;

    /// <summary>The least recently used published entry, if any (pinned or not).</summary>
    public TEntry? LeastRecent => (TEntry?)_tail;

    /// <summary>Finds the entry of <paramref name="block"/> (published or being filled).</summary>
    public bool TryGet(long block, out TEntry entry) => _index.TryGetValue(block, out entry!);

    /// <summary>Whether the index holds an entry for <paramref name="block"/>.</summary>
    public bool Contains(long block) => _index.ContainsKey(block);

    /// <summary>
    /// Indexes a new entry that is being filled: lookups find it, eviction does not see it until
    /// <see cref="Publish"/>. Throws when the block already has an entry or the entry was detached.
    /// </summary>
    public void Add(TEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Detached || entry.InOrder)
        {
            throw new InvalidOperationException($"the entry of block {entry.Block} was already used");
        }

        _index.Add(entry.Block, entry);
    }

    /// <summary>Marks a filled entry complete: it goes to the head of the recency order. Nothing for a detached entry.</summary>
    public void Publish(TEntry entry)
    {
        if (entry.Detached || entry.InOrder)
        {
            return;
        }

        AddToHead(entry);
    }

    /// <summary>Makes a published entry the most recently used one. Nothing for an entry not in the order.</summary>
    public void Touch(TEntry entry)
    {
        if (_head == entry || !entry.InOrder)
        {
            return;
        }

        Unlink(entry);
        AddToHead(entry);
    }

    /// <summary>Adds a pin: the entry will not be evicted until <see cref="Unpin"/>.</summary>
    public void Pin(TEntry entry) => entry.Pins++;

    /// <summary>Removes a pin; true when the entry is detached and this was its last pin (the caller frees its value now).</summary>
    public bool Unpin(TEntry entry)
    {
        Debug.Assert(entry.Pins > 0, "unpinned more often than pinned");
        return --entry.Pins == 0 && entry.Detached;
    }

    /// <summary>Detaches an entry (a failed fill, a dropped block): out of the index and the order, for good.</summary>
    public void Remove(TEntry entry)
    {
        if (_index.TryGetValue(entry.Block, out var current) && current == entry)
        {
            _index.Remove(entry.Block);
        }

        Unlink(entry);
        entry.Detached = true;
    }

    /// <summary>
    /// Detaches the least recently used unpinned published entry and returns it (the caller frees its value); false
    /// when there is none within the scan limit.
    /// </summary>
    public bool TryEvictOldest(out TEntry victim)
    {
        var candidate = _tail;
        int scanned = 0;
        while (candidate != null && candidate.Pins > 0 && scanned++ < _scanLimit)
        {
            candidate = candidate.Prev;
        }

        if (candidate == null || candidate.Pins > 0)
        {
            victim = null!;
            return false;
        }

        victim = (TEntry)candidate;
        Unlink(victim);
        _index.Remove(victim.Block);
        victim.Detached = true;
        return true;
    }

    /// <summary>Detaches every entry and empties the list (closing the cache; free the values of unpinned entries first).</summary>
    public void DetachAll()
    {
        foreach (var e in _index.Values)
        {
            e.Detached = true;
            e.InOrder = false;
            e.Prev = e.Next = null;
        }

        _index.Clear();
        _head = _tail = null;
    }

    private void AddToHead(BlockLruEntry e)
    {
        e.LastUse = Stopwatch.GetTimestamp();
        e.Prev = null;
        e.Next = _head;
        if (_head != null)
        {
            _head.Prev = e;
        }

        _head = e;
        _tail ??= e;
        e.InOrder = true;
    }

    private void Unlink(BlockLruEntry e)
    {
        if (!e.InOrder)
        {
            return;
        }

        if (e.Prev != null)
        {
            e.Prev.Next = e.Next;
        }
        else
        {
            _head = e.Next;
        }

        if (e.Next != null)
        {
            e.Next.Prev = e.Prev;
        }
        else
        {
            _tail = e.Prev;
        }

        e.Prev = e.Next = null;
        e.InOrder = false;
    }
}
