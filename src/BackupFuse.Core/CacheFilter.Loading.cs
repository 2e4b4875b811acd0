using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace BackupFuse.Core;

// Design notes:
// - The load states of a cache entry and who runs a load (see CacheFilter.cs for the whole design): an entry is
//   Loading until its one claimer (TryClaim: a CAS, done only by a thread that loads at once) publishes Ready or
//   Failed; other readers wait on it (WaitFor). Queued entries (parallel loads, readahead) are thread-pool work items
//   whose Execute claims like any reader, so a reader that reaches a queued block first loads it itself.
// - LoadTimed feeds the cheap-layer vote with the time of a whole plain block's load (stored as it reads), after
//   touching the destination's pages; loads that decompress or decrypt do not vote.

/// <content>Claiming, loading, publishing and scheduling the loads of cache entries.</content>
public sealed partial class CacheFilter
{
    private static bool TryClaim(CacheEntry e) => Interlocked.CompareExchange(ref e.Claimed, 1, 0) == 0;

    private static void WaitFor(CacheEntry e)
    {
        lock (e)
        {
            while (e.State == EntryState.Loading)
            {
                Monitor.Wait(e);
            }
        }
    }

    /// <summary>Loads a claimed entry and publishes it; on failure publishes the failure and rethrows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void LoadEntry(CacheEntry e)
    {
        try
        {
            long start = e.Block << _shift;
            LoadTimed(start, e.Buffer.AsSpan(0, e.Length), Next.ReadsPartCheaply(start, e.Length));
        }
        catch
        {
            Fail(e);
            throw;
        }

        lock (_lock)
        {
            _lru.Publish(e); // nothing when it was detached meanwhile (the filter closed)
            e.State = EntryState.Ready;
        }

        lock (e)
        {
            Monitor.PulseAll(e);
        }
    }

    private void Fail(CacheEntry e)
    {
        lock (_lock)
        {
            _lru.Remove(e);
            e.State = EntryState.Failed;
            if (e.Pins == 0)
            {
                ReturnBuffer(e);
            }
        }

        lock (e)
        {
            Monitor.PulseAll(e);
        }
    }

    /// <summary>Loads a whole block; the time of a <paramref name="plain"/> block's load votes on the layer's cost.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void LoadTimed(long start, Span<byte> destination, bool plain)
    {
        // Touch every page of the destination before the clock starts. A new cache buffer is fresh memory the kernel
        // maps on first touch: timed, those page faults made an uncompressed image in the page cache measure as dear,
        // so a fresh daemon kept copying through the cache (and filling it) for its first few hundred MiB.
        for (int i = 0; i < destination.Length; i += 4096)
        {
            destination[i] = 0;
        }

        if (!destination.IsEmpty)
        {
            destination[^1] = 0; // the span need not start on a page: its last page may be one more
        }

        if (!plain)
        {
            Next.Read(start, destination);
            return;
        }

        long t0 = Stopwatch.GetTimestamp();
        Next.Read(start, destination);
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        _cost.Record(destination.Length, seconds);
    }

    /// <summary>Runs a queued entry (parallel load or readahead) on a pool thread.</summary>
    private void RunQueued(CacheEntry e)
    {
        if (!TryClaim(e))
        {
            return;
        }

        bool disposed;
        lock (_lock)
        {
            disposed = _disposed;
            if (!disposed)
            {
                _inflight++;
            }
        }

        if (disposed)
        {
            Fail(e);
            return;
        }

        try
        {
            LoadEntry(e);
            if (e.IsReadahead)
            {
                Interlocked.Increment(ref _readahead);
            }
        }
        catch (Exception)
        {
            // Published as failed: whoever needs the block loads it and gets the error itself.
        }
        finally
        {
            lock (_lock)
            {
                if (--_inflight == 0 && _disposed)
                {
                    Monitor.PulseAll(_lock);
                }
            }
        }
    }

    private void ScheduleReadahead(long from, long to)
    {
        bool cheap = LoadsAreCheap;
        for (long block = from; block <= to; block++)
        {
            long start = block << _shift;
            int length = BlockLength(block);
            if ((cheap && Next.ReadsPartCheaply(start, length)) || IsZeroBlock(start, length))
            {
                continue; // a plain block of a cheap layer is read straight through when it is asked for
            }

            CacheEntry? created;
            lock (_lock)
            {
                if (_disposed || _lru.Contains(block) || !TryReserve(block, length, out created))
                {
                    continue;
                }

                created.IsReadahead = true;
            }

            ThreadPool.UnsafeQueueUserWorkItem(created, preferLocal: false);
        }
    }

    private static class EntryState
    {
        public const int Loading = 0;
        public const int Ready = 1;
        public const int Failed = 2;
    }

    /// <summary>One cached block; also the thread-pool work item that loads it.</summary>
    private sealed class CacheEntry(CacheFilter owner, long block, byte[] buffer, int length) : BlockLruEntry(block), IThreadPoolWorkItem
    {
        public readonly byte[] Buffer = buffer;
        public readonly int Length = length;
        public int State;
        public int Claimed;
        public bool BufferReturned;
        public bool IsReadahead;

        public void Execute() => owner.RunQueued(this);
    }
}
