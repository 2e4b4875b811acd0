namespace BackupFuse.Core;

// Design notes:
// - When a plugin closes, its cache returns its block buffers and its index pages: megabytes that are now garbage in
//   generation 2 (block buffers live long, so they were promoted). An idle daemon allocates nothing, so no
//   collection would ever run and the resident set would stay at its peak. The trimmer runs one full, compacting,
//   aggressive collection (GCCollectionMode.Aggressive also decommits the freed memory and trims the shared array
//   pool) shortly after the last of a burst of closes.
// - Debounced: every close restarts a 1 s timer, so closing 64 plugins costs one collection; releases below 4 MiB in
//   total do not trigger one (unit tests that open and close small caches all the time never pay for it).
// - Watch (the daemon turns it on): the GC sizes its generations by its own heuristics, not by our budget; under a
//   load that churns the cache (evicted blocks are long-lived garbage) the heap grew to 4x the budget before a full
//   collection ran. Every 250 ms the watchdog compares the heap (GC.GetTotalMemory, garbage included) with the
//   budget plus a headroom and, when it is over, runs a full blocking collection. Not compacting: that would copy
//   the whole cache (256 MiB by default) every time; a sweep of a heap of a few thousand byte arrays takes
//   milliseconds. The close-time trim does compact (the large object heap too), once. A live set that is genuinely
//   larger raises the threshold (the heap after the collection plus the headroom), so the watchdog never collects
//   in a loop. This is a soft bound that cannot fail an allocation, unlike GCHeapHardLimit (which would throw
//   OutOfMemoryException in the daemon when the non-cache state of many open plugins outgrows the headroom).
// - Thread-safe; the collections run on timer (thread-pool) threads.

/// <summary>Returns memory released by closed caches to the operating system.</summary>
public static class MemoryTrimmer
{
    /// <summary>Delay after the last release before collecting.</summary>
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    /// <summary>Heap the watchdog allows beyond the cache budget (everything that is not cached data).</summary>
    public const long DefaultHeadroomBytes = 48L << 20;

    /// <summary>Releases below this many bytes in total do not trigger a collection.</summary>
    public const long MinimumBytes = 4L << 20;

    private static readonly object Lock = new();
    private static Timer? s_timer;
    private static long s_released;
    private static Timer? s_watch;
    private static long s_floor;

    /// <summary>Starts the watchdog: keep the managed heap near <paramref name="budget"/> plus <paramref name="headroomBytes"/>.</summary>
    public static void Watch(CacheBudget budget, long headroomBytes)
    {
        ArgumentNullException.ThrowIfNull(budget);
        ArgumentOutOfRangeException.ThrowIfNegative(headroomBytes);
        lock (Lock)
        {
            s_watch?.Dispose();
            s_watch = new Timer(_ => Check(budget, headroomBytes), null, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(250));
        }
    }

    private static void Check(CacheBudget budget, long headroom)
    {
        long limit = Math.Max(budget.CapacityBytes, Interlocked.Read(ref s_floor)) + headroom;
        if (GC.GetTotalMemory(forceFullCollection: false) <= limit)
        {
            return;
        }

        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
        long after = GC.GetTotalMemory(forceFullCollection: false);

        // What survives beyond the budget is live state: the next collection waits until the heap grows past it.
        Interlocked.Exchange(ref s_floor, after);
    }

    /// <summary>Notes that <paramref name="bytes"/> of cache memory were released; schedules a collection.</summary>
    public static void NoteReleased(long bytes)
    {
        if (Interlocked.Add(ref s_released, bytes) < MinimumBytes)
        {
            return;
        }

        lock (Lock)
        {
            s_timer ??= new Timer(_ => Trim(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            s_timer.Change(Delay, Timeout.InfiniteTimeSpan);
        }
    }

    private static void Trim()
    {
        if (Interlocked.Exchange(ref s_released, 0) < MinimumBytes)
        {
            return;
        }

        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Interlocked.Exchange(ref s_floor, GC.GetTotalMemory(forceFullCollection: false));
    }
}
