namespace BackupFuse.Core;

// Design notes:
// - Decides readahead: which blocks after a request to load unasked. A few stream slots remember where recent
//   sequential streams will continue; a request that starts there (within a slack of one request length either way,
//   for concurrent requests of one stream arriving out of order) continues that stream, any other request is a seek
//   and starts a new stream in the least recently used slot (random 4 KiB reads practically never match).
// - Window: a new stream reads nothing ahead; from its second request on, the window doubles (at least 4 blocks and
//   twice the request) up to the maximum, and the blocks from the end of the request up to the window are proposed,
//   never one already proposed to the same stream (ReadaheadNext), never past the last block. A seek loses the
//   window: the new stream starts again from nothing.
// - A request that ends at or before where its stream already is (a re-read, e.g. the same image header read by each
//   of several opens, or a late request of a concurrent stream) continues the stream but neither grows the window nor
//   proposes blocks: reading the same bytes again is no sign of a sequential reader.
// - When the caller does not want readahead now (loads are cheap; the maximum window is 0) a matching request still
//   advances its stream but neither grows the window nor proposes blocks.
// - Invariants: a proposal is a non-empty range of block numbers within [0, blockCount); the ranges proposed to one
//   stream never overlap; a window never exceeds the maximum.
// - Pure bookkeeping in block numbers: no I/O, no clock (recency is a call counter), no allocation after
//   construction. Reusable by any block cache (decompressed blocks, remote ranges) with its own block size.
// - Threading: not thread-safe; the owner's lock guards every call.
// - Not done: loading (the caller schedules the proposed blocks and skips those it has), backward streams, strides.

/// <summary>Recognises sequential request streams and proposes the blocks to read ahead of each.</summary>
public sealed class SequentialStreamTracker
{
    /// <summary>Default number of streams followed at once.</summary>
    public const int DefaultStreamCount = 8;

    private readonly StreamState[] _streams;
    private readonly int _shift;
    private readonly long _blockCount;
    private readonly int _maxWindow;
    private long _clock;

    /// <summary>
    /// A tracker for a source of <paramref name="blockCount"/> blocks of 2^<paramref name="blockShift"/> bytes that
    /// reads at most <paramref name="maxWindowBlocks"/> blocks ahead (0: never) and follows
    /// <paramref name="streamCount"/> streams at once.
    /// </summary>
    public SequentialStreamTracker(int blockShift, long blockCount, int maxWindowBlocks, int streamCount = DefaultStreamCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(blockShift);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockShift, 62);
        ArgumentOutOfRangeException.ThrowIfNegative(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegative(maxWindowBlocks);
        ArgumentOutOfRangeException.ThrowIfLessThan(streamCount, 1);
        _shift = blockShift;
        _blockCount = blockCount;
        _maxWindow = maxWindowBlocks;
        _streams = new StreamState[streamCount];
    }

    /// <summary>
    /// Notes a request of <paramref name="length"/> (at least 1) bytes at <paramref name="offset"/>; true when blocks
    /// <paramref name="fromBlock"/> to <paramref name="toBlock"/> (inclusive) should be read ahead.
    /// <paramref name="allowReadahead"/> false: follow the stream, propose nothing.
    /// </summary>
    public bool Track(long offset, int length, bool allowReadahead, out long fromBlock, out long toBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        fromBlock = 0;
        toBlock = -1;
        long end = offset + length;
        long slack = length; // tolerates concurrent requests of one stream arriving out of order
        int match = -1, oldest = 0;
        _clock++;
        for (int s = 0; s < _streams.Length; s++)
        {
            ref var st = ref _streams[s];
            if (st.InUse && offset >= st.Next - slack && offset <= st.Next + slack)
            {
                match = s;
                break;
            }

            if (!st.InUse || st.LastUse < _streams[oldest].LastUse)
            {
                oldest = s;
            }
        }

        if (match < 0)
        {
            _streams[oldest] = new StreamState { InUse = true, Next = end, LastUse = _clock };
            return false;
        }

        ref var stream = ref _streams[match];
        stream.LastUse = _clock;
        bool progress = end > stream.Next;
        stream.Next = Math.Max(stream.Next, end);
        if (_maxWindow == 0 || !allowReadahead || !progress)
        {
            return false;
        }

        int blocks = (int)(((end - 1) >> _shift) - (offset >> _shift) + 1);
        stream.Window = Math.Min(_maxWindow, Math.Max(stream.Window * 2, Math.Max(4, 2 * blocks)));
        long last = (end - 1) >> _shift;
        fromBlock = Math.Max(stream.ReadaheadNext, last + 1);
        toBlock = Math.Min(last + stream.Window, _blockCount - 1);
        if (toBlock < fromBlock)
        {
            return false;
        }

        stream.ReadaheadNext = toBlock + 1;
        return true;
    }

    private struct StreamState
    {
        public bool InUse;
        public long Next;
        public long ReadaheadNext;
        public int Window;
        public long LastUse;
    }
}
