namespace BackupFuse.Core;

// Design notes:
// - One byte budget for every cache of a process (a mount): the decompressed-block caches of all open plugins
//   (CacheFilter) and the parsed index pages of all open images draw from it, so the memory they hold together never
//   exceeds CapacityBytes, however many plugins are open. A daemon serves one mount, so the process budget
//   (Process) is the mount's; `backupfuse mount --cache-size` sets its capacity before anything is opened.
// - Members keep their own maps and LRU lists; the budget only counts bytes. A member that needs room asks the budget
//   (TryTake); when the budget is full, the budget evicts the least recently used item across ALL members (each
//   member reports the last-use stamp of its oldest item), so an idle plugin's blocks make room for a busy one's.
// - Deadlock freedom: a member calls TryTake while holding its own lock; the budget never blocks on a member: members
//   evict through TryEvictOldest, which only TRIES their lock (Monitor.TryEnter; re-entrant for the requester
//   itself). A busy member is skipped; when no member can give anything back, TryTake fails and the caller goes
//   around the cache (a read straight into its own buffer), so the bound holds under any concurrency.
// - The member list is copy-on-write (registration is rare, eviction scans are lock-free reads of a snapshot).
// - Released memory goes back to the OS: members report what they released on close and the budget asks the
//   MemoryTrimmer for a collection shortly after (debounced), since a closed plugin's buffers are otherwise garbage
//   in generation 2 that no allocation would collect.
// - Hits, misses and waits are counted here too (members call CountHit/CountMiss/CountWait besides their own
//   counters), so `backupfuse status` can show the hit rate of the whole mount's memory cache; they survive members
//   that close.
// - Plugins that read the same image files as the same disk share one member in the daemon (SharedDiskCaches), so a
//   block is held once however many of them read it; different disks of one chain (a full and its incremental)
//   still hold their own copies of the blocks they have in common; the budget bounds the sum.

/// <summary>A byte budget shared by several caches, with least-recently-used eviction across them.</summary>
public sealed class CacheBudget
{
    /// <summary>Default capacity: 256 MiB (the per-plugin cache size before the budget was shared).</summary>
    public const long DefaultCapacityBytes = 256L << 20;

    /// <summary>At most this many evictions for one TryTake (a large block may need several small items evicted).</summary>
    private const int MaxEvictionsPerTake = 64;

    private readonly object _registry = new();
    private ICacheBudgetMember[] _members = [];
    private long _capacity;
    private long _held;
    private long _evictions;
    private long _hits;
    private long _misses;
    private long _waits;

    /// <summary>A budget of <paramref name="capacityBytes"/> bytes.</summary>
    public CacheBudget(long capacityBytes = DefaultCapacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        _capacity = capacityBytes;
    }

    /// <summary>The budget of this process (the mount's): every plugin's block cache and every image's index pages.</summary>
    public static CacheBudget Process { get; } = new();

    /// <summary>The bound on <see cref="HeldBytes"/>; lowering it takes effect as members next need room.</summary>
    public long CapacityBytes
    {
        get => Interlocked.Read(ref _capacity);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Interlocked.Exchange(ref _capacity, value);
        }
    }

    /// <summary>Bytes the members hold now.</summary>
    public long HeldBytes => Interlocked.Read(ref _held);

    /// <summary>Items evicted by the budget (across members) to make room.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Block reads the members answered from memory, summed over every member that ever counted.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Block reads the members had to load from below them.</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Block reads that waited for a load another reader had started (then served from memory).</summary>
    public long Waits => Interlocked.Read(ref _waits);

    /// <summary>Number of registered members.</summary>
    public int MemberCount => Volatile.Read(ref _members).Length;

    /// <summary>Counts a member's block read answered from memory (<see cref="Hits"/>).</summary>
    public void CountHit() => Interlocked.Increment(ref _hits);

    /// <summary>Counts a member's block read that had to be loaded (<see cref="Misses"/>).</summary>
    public void CountMiss() => Interlocked.Increment(ref _misses);

    /// <summary>Counts a member's block read that waited for another reader's load (<see cref="Waits"/>).</summary>
    public void CountWait() => Interlocked.Increment(ref _waits);

    /// <summary>Adds a member that holds bytes of this budget and can give them back.</summary>
    public void Register(ICacheBudgetMember member)
    {
        ArgumentNullException.ThrowIfNull(member);
        lock (_registry)
        {
            Volatile.Write(ref _members, [.. _members, member]);
        }
    }

    /// <summary>
    /// Removes a member (it must have released its bytes, or release them later through <see cref="Release"/>);
    /// <paramref name="releasedBytes"/> is what it gave back on closing, for the memory trimmer.
    /// </summary>
    public void Unregister(ICacheBudgetMember member, long releasedBytes)
    {
        lock (_registry)
        {
            int i = Array.IndexOf(_members, member);
            if (i >= 0)
            {
                Volatile.Write(ref _members, [.. _members[..i], .. _members[(i + 1)..]]);
            }
        }

        if (releasedBytes > 0)
        {
            MemoryTrimmer.NoteReleased(releasedBytes);
        }
    }

    /// <summary>
    /// Takes <paramref name="bytes"/> from the budget, evicting the least recently used items of any member when it
    /// is full. False when no room could be made (everything is in use or busy): the caller must not cache.
    /// May call back into the caller's own <see cref="ICacheBudgetMember.TryEvictOldest"/> on the same thread.
    /// </summary>
    public bool TryTake(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > CapacityBytes)
        {
            return false;
        }

        for (int attempt = 0; ; attempt++)
        {
            long held = Interlocked.Read(ref _held);
            if (held + bytes <= CapacityBytes)
            {
                if (Interlocked.CompareExchange(ref _held, held + bytes, held) == held)
                {
                    return true;
                }

                continue;
            }

            if (attempt >= MaxEvictionsPerTake || !EvictOne())
            {
                return false;
            }
        }
    }

    /// <summary>Gives <paramref name="bytes"/> back (an item was evicted, dropped or its owner closed).</summary>
    public void Release(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Interlocked.Add(ref _held, -bytes);
    }

    /// <summary>Evicts the least recently used item among all members that can give one now.</summary>
    private bool EvictOne()
    {
        var members = Volatile.Read(ref _members);
        Span<bool> tried = members.Length <= 256 ? stackalloc bool[members.Length] : new bool[members.Length];
        for (int round = 0; round < members.Length; round++)
        {
            int best = -1;
            long oldest = long.MaxValue;
            for (int i = 0; i < members.Length; i++)
            {
                if (tried[i])
                {
                    continue;
                }

                long use = members[i].OldestUse;
                if (use < oldest)
                {
                    oldest = use;
                    best = i;
                }
            }

            if (best < 0)
            {
                return false; // nobody holds anything evictable
            }

            tried[best] = true;
            if (members[best].TryEvictOldest())
            {
                Interlocked.Increment(ref _evictions);
                return true;
            }
        }

        return false;
    }
}
