using System.Runtime.InteropServices;
using BackupFuse.Core;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - The next request of a sequential reader, read before it arrives. A reader at queue depth 1 (fio, dd, cp, a
//   hypervisor's single-threaded copy) waits for each reply before it asks again, so while the kernel copies one
//   reply into the reader and wakes it, the daemon's other core is idle. After a read at the end of the previous
//   one, the same number of bytes that follow goes to a pool thread, into a staging buffer owned here; the next
//   read of exactly that range (or a shorter one at the same offset) waits for it and copies it out.
// - Only for sources that cannot change (VirtualFile makes one only when the source's CanWrite is false): a staged
//   buffer is never checked against a later write. Only for ranges that are all Data: holes read as fast as a copy.
// - Correctness never depends on the staging: a read that finds nothing matching, a failed read-ahead (the error is
//   dropped; the reader's own read meets it again) or a read-ahead the pool has not started yet (taken back: the
//   reader reads itself, as without read-ahead) all end in the plain read. Deciding whether to read ahead never fails
//   a read: a layer that cannot say what the next range holds (GetExtent throws) just gets no read-ahead.
// - The worker writes Done and then signals; nothing moves Done to Idle without waiting for that signal (TryServe and
//   Dispose wait for it anyway, Completed when it drops an unused read-ahead), so a late signal can never mark the next
//   read-ahead finished while it runs (found by review: a stale Set, then a copy out of a buffer still being written).
// - Take-back as in CacheFilter's DirectLoadHelper: the pool item claims the work (Queued -> Running) and so does a
//   reader that finds it queued (Queued -> Idle), so nobody waits for a pool thread that is not running. A stale item
//   (taken back, still in the pool's queue) only ever claims work that is completely set up (Queued is set last).
// - Threading: reads of one handle may arrive concurrently; the staging is used under one lock, held while waiting
//   for the read-ahead in flight. The buffer (native, up to one request, 1 MiB) is written only by the claimed
//   worker and read only after it signalled. Dispose (release, after the handle's last request) waits for a running
//   read-ahead before the buffer and the source go away.

/// <summary>Reads the next range of a sequential reader ahead on a pool thread (see design notes).</summary>
internal sealed unsafe class SequentialReadAhead : IThreadPoolWorkItem, IDisposable
{
    private const int Idle = 0;
    private const int Queued = 1;
    private const int Running = 2;
    private const int Done = 3;

    private readonly IBlockSource _source;
    private readonly Action<IThreadPoolWorkItem> _queue;
    private readonly object _lock = new();
    private readonly ManualResetEventSlim _finished = new(false);
    private int _state;
    private long _offset;
    private int _length;
    private bool _failed;
    private byte* _buffer;
    private int _capacity;
    private long _lastEnd = -1;
    private bool _disposed;

    /// <summary>Reads ahead of sequential readers of <paramref name="source"/> on the thread pool.</summary>
    public SequentialReadAhead(IBlockSource source)
        : this(source, static item => ThreadPool.UnsafeQueueUserWorkItem(item, preferLocal: false))
    {
    }

    /// <summary>Tests: <paramref name="queue"/> stands for the thread pool.</summary>
    internal SequentialReadAhead(IBlockSource source, Action<IThreadPoolWorkItem> queue)
    {
        _source = source;
        _queue = queue;
    }

    /// <summary>Reads served from a read-ahead (tests).</summary>
    public long Hits { get; private set; }

    /// <summary>Fills <paramref name="destination"/> from a finished read-ahead of <paramref name="offset"/>, or returns false (the caller reads).</summary>
    public bool TryServe(long offset, Span<byte> destination)
    {
        lock (_lock)
        {
            int state = Volatile.Read(ref _state);
            if (state == Idle || _offset != offset || _length < destination.Length)
            {
                return false;
            }

            if (state == Queued && Interlocked.CompareExchange(ref _state, Idle, Queued) == Queued)
            {
                return false; // not started: the reader does it itself, now
            }

            _finished.Wait();
            bool served = !_failed;
            if (served)
            {
                new ReadOnlySpan<byte>(_buffer, destination.Length).CopyTo(destination);
                Hits++;
            }

            Finish();
            return served;
        }
    }

    /// <summary>Notes a completed read of <paramref name="count"/> bytes at <paramref name="offset"/>; reads the next range ahead if the reader is sequential.</summary>
    public void Completed(long offset, int count, bool served, long length)
    {
        lock (_lock)
        {
            bool sequential = served || offset == _lastEnd;
            _lastEnd = offset + count;
            if (!sequential || _disposed || count <= 0)
            {
                return;
            }

            int state = Volatile.Read(ref _state);
            if (state == Done)
            {
                // A read-ahead nobody asked for. Its worker writes Done just before it signals: wait for the signal,
                // or a late Set would mark the next read-ahead finished while it still runs.
                _finished.Wait();
                Finish();
            }
            else if (state != Idle)
            {
                return; // one in flight (or queued) for another range
            }

            long next = offset + count;
            int n = (int)Math.Min(count, length - next);
            if (n <= 0 || !AllData(next, n))
            {
                return;
            }

            if (n > _capacity)
            {
                NativeMemory.Free(_buffer);
                _buffer = null;
                _capacity = 0;
                _buffer = (byte*)NativeMemory.Alloc((nuint)n);
                _capacity = n;
            }

            _offset = next;
            _length = n;
            _failed = false;
            _finished.Reset();
            Volatile.Write(ref _state, Queued);
            _queue(this);
        }
    }

    /// <summary>Whether [<paramref name="offset"/>, +<paramref name="length"/>) is all Data; false when the layer cannot tell (a damaged index page is the reader's to meet, not this read's).</summary>
    private bool AllData(long offset, int length)
    {
        try
        {
            return _source.GetExtent(offset, length) is { Kind: ExtentKind.Data } extent && extent.Length >= length;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The pool's half: reads the staged range if it is still queued.</summary>
    public void Execute()
    {
        if (Interlocked.CompareExchange(ref _state, Running, Queued) != Queued)
        {
            return; // taken back, or a stale item of an earlier read-ahead
        }

        try
        {
            _source.Read(_offset, new Span<byte>(_buffer, _length));
        }
        catch (Exception)
        {
            _failed = true; // the reader's own read of the range reports it
        }

        Volatile.Write(ref _state, Done);
        _finished.Set();
    }

    /// <summary>Tests: waits until no read-ahead is queued or running (so the next read finds it finished).</summary>
    internal bool WaitUntilSettled(TimeSpan timeout) => SpinWait.SpinUntil(() => Volatile.Read(ref _state) is Idle or Done, timeout);

    /// <summary>Waits for a running read-ahead and frees the buffer.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            if (Interlocked.CompareExchange(ref _state, Idle, Queued) != Queued && Volatile.Read(ref _state) != Idle)
            {
                _finished.Wait();
            }

            _state = Idle;
            NativeMemory.Free(_buffer);
            _buffer = null;
            _capacity = 0;
        }
    }

    private void Finish()
    {
        _failed = false;
        Volatile.Write(ref _state, Idle);
    }
}
