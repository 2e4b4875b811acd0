using System.Buffers;
using System.Runtime.CompilerServices;

namespace BackupFuse.Core;

// Design notes:
// - A read cache of whole aligned blocks (default 64 KiB = the backup chunk size, so one block is one
//   decompression) over a read-only layer, shared by every reader of one stack. Blocks live in ArrayPool buffers;
//   the bytes held by block buffers (loaded or being loaded) never exceed the capacity: a new block first evicts
//   least-recently-used unpinned blocks, and when everything is pinned the read goes around the cache (a private
//   pooled buffer or the caller's own buffer), so the bound holds under any concurrency.
// - The layer below must not change while the filter lives (a backup chain is immutable); writes are passed
//   through untouched and do not invalidate, which is why the filter belongs under a differencing overlay, never
//   above a writable layer.
// - Coalescing: a block being loaded is an entry in the map in state Loading. Any thread that needs it either
//   claims it (a CAS on the entry, done only by a thread that loads immediately) or waits for the claimer to
//   publish. A thread never waits while holding an unpublished claim, so waiting cannot deadlock. A failed load
//   removes the entry; waiters then load the block themselves and get their own exception (never wrong bytes,
//   and each reader sees the real error).
// - Pins: a reader pins every entry it uses for the length of its request, so a buffer is never recycled under a
//   copy; eviction skips pinned entries and a detached entry returns its buffer when its last pin goes.
// - Parallel loads: a request that misses several blocks queues the extra ones on the thread pool (the entry itself
//   is the work item) and loads the rest itself; whoever claims first loads. On the 2-core target this spreads
//   the decompressions of one 1 MiB FUSE read over both cores.
// - Readahead: a few stream slots recognise sequential requests (a request that starts where a stream ended, with
//   a slack of one request length for reordering of concurrent requests; random 4 KiB reads practically never match). From the second request of a stream on, the blocks after it are
//   loaded ahead on the thread pool, the window doubling up to the maximum. Readers that reach a block still queued
//   claim and load it themselves instead of waiting behind the queue.
// - Zero blocks (the layer's extents say non-Data for the whole block) are cleared, never cached or loaded.
// - Split direct reads: when a request has several whole blocks to read straight into the caller's buffer (cheap
//   layers), the last half of them goes to a pool thread (CacheFilter.DirectLoadHelper.cs) so both cores copy and
//   verify; a request at queue depth 1 otherwise leaves the second core idle.
// - Cheap layers: the filter measures what each load of a plain block costs (one the layer stores as it reads:
//   ReadsPartCheaply for the whole block) and keeps a clamped vote (cheap +1, dear -1, within +-16) so that a few
//   loads slowed by preemption do not flip the policy. When most plain blocks load faster than CheapBytesPerSecond
//   (an uncompressed image in the page cache), copying them through the cache would cost about as much as loading
//   them, so reads that cover whole plain blocks go straight into the caller's buffer, uncached, and readahead
//   skips them; partial-block reads (4 KiB random reads) still use the cache. Blocks to decompress or decrypt never
//   vote and always go through the cache with readahead, however fast their codec, also in an image whose raw chunks
//   (incompressible data) made the verdict cheap. (Before, every fast load voted and a cheap verdict switched
//   readahead off for the whole layer: zstd chunks of text decode faster than the threshold, and on the bench disk a
//   zstd image's sequential reader found 71 % of its blocks ready instead of 88 %, decoding the rest itself.)
// - Cheap parts: a partial-block miss that the layer can read on its own at about its own cost (ReadsPartCheaply: a
//   raw chunk with sector checksums, zeros) is read straight into the caller's buffer and not cached. Loading the
//   whole block would read and check 16 times the bytes of a 4 KiB read for a hit that random reads rarely get.
// - No per-request allocation on the hot path: the per-request slot array is pooled; a new cache entry object is
//   allocated per block loaded into the cache (not per request), buffers come from ArrayPool.
// - Composition: the index, recency order and pins are a BlockLru, the stream slots and readahead windows a
//   SequentialStreamTracker, the cheap-layer vote a LoadCostVote (each its own file, testable without threads);
//   this class adds the buffers and their byte bound, the load states, coalescing and the scheduling (the claiming,
//   loading and queueing of entries in CacheFilter.Loading.cs, split direct reads in CacheFilter.DirectLoadHelper.cs,
//   reserving and evicting buffers in CacheFilter.Capacity.cs).
// - Thread-safe; one lock guards the map, the LRU list, the pins and the stream slots, and is held only for
//   bookkeeping (never during a load or a copy). The cost vote is lock-free (see LoadCostVote).
// - Shared budget (optional, CacheBudget): the mount's caches draw their block bytes from one budget, so many open
//   plugins together stay within it. Such a filter has no bound of its own; a block it reserves takes bytes from the
//   budget, which may evict the least recently used unpinned block of any member (this one included, re-entering
//   this filter's lock on the same thread; others only by TryEnter, so no lock order is needed). When no room can
//   be made the read goes around the cache, as when everything is pinned. Entries carry a last-use stamp for that.

/// <summary>A bounded, shared cache of decompressed blocks with coalesced misses, parallel loads and readahead.</summary>
public sealed partial class CacheFilter : BlockFilter, ICacheBudgetMember
{
    /// <summary>Default capacity: 256 MiB of block buffers.</summary>
    public const long DefaultCapacityBytes = 256L << 20;

    /// <summary>Default block size: 64 KiB (the default backup chunk size).</summary>
    public const int DefaultCacheBlockSize = 64 << 10;

    /// <summary>Default largest readahead window: 4 MiB.</summary>
    public const int DefaultReadaheadBytes = 4 << 20;

    /// <summary>Blocks that load faster than this are read around the cache when a read covers them whole.</summary>
    public const double CheapBytesPerSecond = 1.5e9;

    private readonly object _lock = new();
    private readonly BlockLru<CacheEntry> _lru = new();
    private readonly SequentialStreamTracker _streams;
    private readonly LoadCostVote _cost = new(CheapBytesPerSecond);
    private readonly int _shift;
    private readonly int _blockSize;
    private readonly long _capacity;
    private readonly CacheBudget? _budget;
    private long _bytesHeld;
    private int _inflight;
    private bool _disposed;
    private long _hits;
    private long _misses;
    private long _waits;
    private long _readahead;
    private long _zeros;
    private long _evictions;

    /// <summary>
    /// Caches <paramref name="next"/> (which it owns) in blocks of <paramref name="cacheBlockSize"/> bytes (a power of
    /// two), holding at most <paramref name="capacityBytes"/> bytes of blocks and reading up to
    /// <paramref name="readaheadBytes"/> ahead of sequential streams (0 disables readahead).
    /// </summary>
    public CacheFilter(IBlockSource next, long capacityBytes = DefaultCapacityBytes, int cacheBlockSize = DefaultCacheBlockSize, int readaheadBytes = DefaultReadaheadBytes)
        : base(next)
    {
        if (cacheBlockSize < 512 || (cacheBlockSize & (cacheBlockSize - 1)) != 0)
        {
            throw new ArgumentException("the cache block size must be a power of two of at least 512", nameof(cacheBlockSize));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(readaheadBytes);
        _blockSize = cacheBlockSize;
        _shift = System.Numerics.BitOperations.Log2((uint)cacheBlockSize);
        _capacity = capacityBytes;
        _streams = new SequentialStreamTracker(_shift, (next.Length + cacheBlockSize - 1) >> _shift, readaheadBytes / cacheBlockSize);
    }

    /// <summary>
    /// Caches <paramref name="next"/> (which it owns) like the other constructor, but draws the bytes of its blocks
    /// from <paramref name="budget"/>, shared with other caches, instead of having a capacity of its own.
    /// </summary>
    public CacheFilter(IBlockSource next, CacheBudget budget, int cacheBlockSize = DefaultCacheBlockSize, int readaheadBytes = DefaultReadaheadBytes)
        : this(next, long.MaxValue, cacheBlockSize, readaheadBytes)
    {
        ArgumentNullException.ThrowIfNull(budget);
        _budget = budget;
        budget.Register(this);
    }

    /// <summary>The cache's block size.</summary>
    public int CacheBlockSize => _blockSize;

    /// <summary>The bound on the bytes of cached blocks (the shared budget's, when there is one).</summary>
    public long CapacityBytes => _budget?.CapacityBytes ?? _capacity;

    /// <inheritdoc/>
    long ICacheBudgetMember.OldestUse => _lru.OldestUse;

    /// <summary>A snapshot of the counters.</summary>
    public CacheStatistics Statistics
    {
        get
        {
            lock (_lock)
            {
                return new CacheStatistics(_hits, _misses, _waits, _readahead, _zeros, _evictions, _bytesHeld, CapacityBytes);
            }
        }
    }

    /// <summary>Whether loads measured so far are cheap enough to bypass the cache for whole-block reads.</summary>
    public bool LoadsAreCheap => _cost.IsCheap;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        if (buffer.IsEmpty)
        {
            return;
        }

        long first = offset >> _shift;
        int count = checked((int)(((offset + buffer.Length - 1) >> _shift) - first + 1));
        var slots = ArrayPool<Slot>.Shared.Rent(count);
        try
        {
            long readaheadFrom, readaheadTo;
            bool readahead;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                for (int i = 0; i < count; i++)
                {
                    slots[i] = Lookup(first + i);
                }

                readahead = _streams.Track(offset, buffer.Length, allowReadahead: true, out readaheadFrom, out readaheadTo);
            }

            PlanMisses(offset, buffer, first, slots.AsSpan(0, count));
            if (readahead)
            {
                ScheduleReadahead(readaheadFrom, readaheadTo);
            }

            ServeWithHelper(offset, buffer, first, slots.AsSpan(0, count));
        }
        finally
        {
            Release(slots.AsSpan(0, count));
            ArrayPool<Slot>.Shared.Return(slots, clearArray: true);
        }
    }

    /// <summary>Looks a block up under the lock; pins what it finds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private Slot Lookup(long block)
    {
        if (!_lru.TryGet(block, out var e))
        {
            return new Slot(null, SlotKind.Miss);
        }

        _lru.Pin(e);
        if (e.State == EntryState.Ready)
        {
            _lru.Touch(e);
            return new Slot(e, SlotKind.Cached);
        }

        return new Slot(e, SlotKind.Loading);
    }

    /// <summary>Decides for every missed block: zeros, straight into the caller's buffer, a new cache entry, or private.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PlanMisses(long offset, Span<byte> buffer, long first, Span<Slot> slots)
    {
        long end = offset + buffer.Length;
        bool cheap = LoadsAreCheap;
        int owned = 0;
        for (int i = 0; i < slots.Length; i++)
        {
            if (slots[i].Kind != SlotKind.Miss)
            {
                continue;
            }

            long block = first + i;
            long start = block << _shift;
            int length = BlockLength(block);
            if (IsZeroBlock(start, length))
            {
                long ps = Math.Max(start, offset);
                buffer.Slice((int)(ps - offset), (int)(Math.Min(start + length, end) - ps)).Clear();
                slots[i] = new Slot(null, SlotKind.Zero);
                Interlocked.Increment(ref _zeros);
                continue;
            }

            bool whole = start >= offset && start + length <= end;
            if (cheap && whole && Next.ReadsPartCheaply(start, length))
            {
                CountMiss();
                slots[i] = new Slot(null, SlotKind.Direct);
                continue;
            }

            if (!whole)
            {
                long ps = Math.Max(start, offset);
                if (Next.ReadsPartCheaply(ps, (int)(Math.Min(start + length, end) - ps)))
                {
                    CountMiss();
                    slots[i] = new Slot(null, SlotKind.Part);
                    continue;
                }
            }

            lock (_lock)
            {
                var found = Lookup(block);
                if (found.Kind != SlotKind.Miss)
                {
                    slots[i] = found; // another reader added it since the first look: Serve counts a hit or a wait
                    continue;
                }

                CountMiss();
                if (TryReserve(block, length, out var created))
                {
                    _lru.Pin(created);
                    slots[i] = new Slot(created, SlotKind.Owned);
                    owned++;
                }
                else
                {
                    slots[i] = new Slot(null, SlotKind.Private);
                }
            }
        }

        if (owned >= 2)
        {
            // Hand all but the first to the pool; this thread starts with the first and claims whatever is left.
            bool skipped = false;
            foreach (var slot in slots)
            {
                if (slot.Kind == SlotKind.Owned)
                {
                    if (skipped)
                    {
                        ThreadPool.UnsafeQueueUserWorkItem(slot.Entry!, preferLocal: false);
                    }

                    skipped = true;
                }
            }
        }
    }

    private void CountMiss()
    {
        Interlocked.Increment(ref _misses);
        _budget?.CountMiss();
    }

    private bool IsZeroBlock(long start, int length)
    {
        var e = Next.GetExtent(start, length);
        return e.Kind != ExtentKind.Data && e.Length >= length;
    }

    /// <summary>Copies, loads or waits for each block in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Serve(long offset, Span<byte> buffer, long first, Span<Slot> slots)
    {
        long end = offset + buffer.Length;
        for (int i = 0; i < slots.Length; i++)
        {
            var slot = slots[i];
            if (slot.Kind is SlotKind.Zero or SlotKind.Delegated)
            {
                continue;
            }

            long block = first + i;
            long start = block << _shift;
            int length = BlockLength(block);
            long ps = Math.Max(start, offset);
            var piece = buffer.Slice((int)(ps - offset), (int)(Math.Min(start + length, end) - ps));
            int within = (int)(ps - start);
            switch (slot.Kind)
            {
                case SlotKind.Cached:
                    Interlocked.Increment(ref _hits);
                    _budget?.CountHit();
                    slot.Entry!.Buffer.AsSpan(within, piece.Length).CopyTo(piece);
                    break;
                case SlotKind.Direct:
                    LoadTimed(start, piece, plain: true);
                    break;
                case SlotKind.Part:
                    Next.Read(ps, piece);
                    break;
                case SlotKind.Private:
                    ReadPrivately(start, length, within, piece);
                    break;
                default:
                    var e = slot.Entry!;
                    bool ownMiss = slot.Kind == SlotKind.Owned; // counted as a miss in PlanMisses, whoever loads it
                    if (TryClaim(e))
                    {
                        LoadEntry(e);
                    }
                    else if (Volatile.Read(ref e.State) == EntryState.Loading)
                    {
                        if (!ownMiss)
                        {
                            Interlocked.Increment(ref _waits);
                            _budget?.CountWait();
                        }

                        WaitFor(e);
                    }
                    else if (!ownMiss)
                    {
                        Interlocked.Increment(ref _hits);
                        _budget?.CountHit();
                    }

                    if (Volatile.Read(ref e.State) == EntryState.Ready)
                    {
                        e.Buffer.AsSpan(within, piece.Length).CopyTo(piece);
                    }
                    else
                    {
                        ReadPrivately(start, length, within, piece); // the loader failed: get our own answer
                    }

                    break;
            }
        }
    }

    private void ReadPrivately(long start, int length, int within, Span<byte> piece)
    {
        bool plain = Next.ReadsPartCheaply(start, length);
        if (within == 0 && piece.Length == length)
        {
            LoadTimed(start, piece, plain);
            return;
        }

        byte[] tmp = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            LoadTimed(start, tmp.AsSpan(0, length), plain);
            tmp.AsSpan(within, piece.Length).CopyTo(piece);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(tmp);
        }
    }

    /// <summary>Unpins what the request pinned; fails entries it created and nobody claimed (only after an error).</summary>
    private void Release(Span<Slot> slots)
    {
        foreach (var slot in slots)
        {
            if (slot.Kind == SlotKind.Owned && Volatile.Read(ref slot.Entry!.State) == EntryState.Loading && TryClaim(slot.Entry))
            {
                Fail(slot.Entry);
            }
        }

        lock (_lock)
        {
            foreach (var slot in slots)
            {
                if (slot.Entry is { } e && _lru.Unpin(e))
                {
                    ReturnBuffer(e);
                }
            }
        }
    }

    private int BlockLength(long block) => (int)Math.Min(_blockSize, Length - (block << _shift));

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            long released;
            lock (_lock)
            {
                released = _bytesHeld;
                _disposed = true;
                while (_inflight > 0)
                {
                    Monitor.Wait(_lock);
                }

                foreach (var e in _lru.Entries)
                {
                    if (e.Pins == 0 && e.State == EntryState.Loading && TryClaim(e))
                    {
                        // Queued (readahead, parallel load) and not started: nobody waits for it; when the pool runs
                        // it, its claim fails and it does nothing. Its buffer goes back now, not when the pool gets
                        // round to it, so a closed cache holds nothing of the budget.
                        e.State = EntryState.Failed;
                    }

                    if (e.Pins == 0 && e.State != EntryState.Loading)
                    {
                        ReturnBuffer(e);
                    }
                }

                _lru.DetachAll();
                released -= _bytesHeld; // pinned or loading entries return theirs when their reader is done
            }

            _budget?.Unregister(this, released);
        }

        base.Dispose(disposing);
    }

    private enum SlotKind : byte
    {
        Miss,
        Cached,
        Loading,
        Owned,
        Zero,
        Direct,
        Part, // a part of a block, read alone below (the layer reads parts cheaply): never cached
        Private,
        Delegated,
    }

    private record struct Slot(CacheEntry? Entry, SlotKind Kind);
}
