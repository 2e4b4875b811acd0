using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace BackupFuse.Core;

// Design notes:
// - For cheap layers (an uncompressed image in the page cache) whole blocks are read straight into the caller's
//   buffer, one after the other on the requesting thread. At queue depth 1 (one 1 MiB FUSE request at a time) that
//   leaves the other core idle, so the last half of those blocks goes to a pool thread.
// - The helper writes into the caller's buffer through a pointer: Read pins the buffer for the whole request and
//   does not return (not even by an exception) before the helper has finished.
// - Take-back: when the requesting thread is done with its half and the pool has not started the helper yet (a busy
//   pool), it claims the helper's half and does it itself. Nothing ever waits for a pool thread that is not running.
// - A taken-back helper's work item is still in the pool's queue and runs later, maybe during the next request that
//   reuses the helper. It may only ever run complete work: Prepare leaves the helper unclaimable (Preparing) while
//   the blocks are added, and Arm makes it claimable just before the new item is queued; whichever item claims it
//   (the stale or the new one) then runs the whole list, the other finds it claimed. Claimable right after Prepare,
//   a stale item could claim a half-built list and report done, and the blocks added after it were never read: the
//   reader got whatever its buffer held (found by review, 2026-12-02, after a once-seen "disk differs after a
//   remount" in WriteTests under parallel load).
// - No per-request allocation: each requesting thread keeps one helper, out of its slot while in use (so a nested
//   cache filter below on the same thread gets its own) and back when Read returns.
// - An exception from the helper's half reaches the reader (a corrupt block fails the whole request, as inline).

/// <summary>The part of <see cref="CacheFilter"/> that splits a request's direct block reads over two threads.</summary>
public sealed partial class CacheFilter
{
    /// <summary>Requests with at least this many whole direct blocks are split.</summary>
    private const int SplitDirectMinimum = 4;

    [ThreadStatic]
    private static DirectLoadHelper? t_helper;

    /// <summary>Tests only: called between Prepare and the first Add, the window a stale pool item must not use.</summary>
    internal static Action<CacheFilter, IThreadPoolWorkItem>? PreparedForTests;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void ServeWithHelper(long offset, Span<byte> buffer, long first, Span<Slot> slots)
    {
        int direct = 0;
        foreach (var slot in slots)
        {
            if (slot.Kind == SlotKind.Direct)
            {
                direct++;
            }
        }

        if (direct < SplitDirectMinimum)
        {
            Serve(offset, buffer, first, slots);
            return;
        }

        // Taken out of the thread's slot while in use: a layer below this one may be a cache filter too and split
        // its own request on this thread before ours is finished.
        var helper = t_helper ?? new DirectLoadHelper();
        t_helper = null;
        fixed (byte* pinned = buffer)
        {
            helper.Prepare(this, pinned, offset, first);
            PreparedForTests?.Invoke(this, helper);
            int give = direct / 2;
            for (int i = slots.Length - 1; i >= 0 && give > 0; i--)
            {
                if (slots[i].Kind == SlotKind.Direct)
                {
                    slots[i] = new Slot(null, SlotKind.Delegated);
                    helper.Add(i);
                    give--;
                }
            }

            helper.Arm(); // complete: from here a pool thread (this request's item, or a stale one) may claim it
            ThreadPool.UnsafeQueueUserWorkItem(helper, preferLocal: false);
            bool served = false;
            try
            {
                Serve(offset, buffer, first, slots);
                served = true;
            }
            finally
            {
                helper.Finish(rethrow: served);
                t_helper = helper;
            }
        }
    }

    /// <summary>Loads a set of whole blocks into a pinned request buffer, on a pool thread or taken back by its owner.</summary>
    private sealed unsafe class DirectLoadHelper : IThreadPoolWorkItem
    {
        private const int Idle = 0;
        private const int Running = 1;
        private const int Preparing = 2;

        private readonly ManualResetEventSlim _done = new();
        private int[] _blocks = new int[16];
        private int _count;
        private int _state;
        private CacheFilter? _owner;
        private byte* _buffer;
        private long _offset;
        private long _first;
        private ExceptionDispatchInfo? _error;

        public void Prepare(CacheFilter owner, byte* buffer, long offset, long first)
        {
            _owner = owner;
            _buffer = buffer;
            _offset = offset;
            _first = first;
            _count = 0;
            _error = null;
            _done.Reset();
            Volatile.Write(ref _state, Preparing); // not claimable until Arm: a stale queued item must not take a half-built list
        }

        /// <summary>The block list is complete: a pool thread, or the owner in Finish, may claim it now.</summary>
        public void Arm() => Volatile.Write(ref _state, Idle);

        public void Add(int slotIndex)
        {
            if (_count == _blocks.Length)
            {
                Array.Resize(ref _blocks, _blocks.Length * 2);
            }

            _blocks[_count++] = slotIndex;
        }

        public void Execute()
        {
            if (Interlocked.CompareExchange(ref _state, Running, Idle) != Idle)
            {
                return; // the owner took it back
            }

            Run();
            _done.Set(); // the last touch of this object by the pool thread
        }

        /// <summary>Takes the work back if no pool thread started it, else waits for it; then reports its error.</summary>
        public void Finish(bool rethrow)
        {
            if (Interlocked.CompareExchange(ref _state, Running, Idle) == Idle)
            {
                Run();
            }
            else
            {
                _done.Wait();
            }

            var error = _error;
            _owner = null;
            _buffer = null;
            if (rethrow)
            {
                error?.Throw();
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Run()
        {
            try
            {
                var owner = _owner!;
                for (int k = 0; k < _count; k++)
                {
                    long block = _first + _blocks[k];
                    long start = block << owner._shift;
                    int length = owner.BlockLength(block);
                    owner.LoadTimed(start, new Span<byte>(_buffer + (start - _offset), length), plain: true);
                }
            }
            catch (Exception e)
            {
                _error = ExceptionDispatchInfo.Capture(e);
            }
        }
    }
}
