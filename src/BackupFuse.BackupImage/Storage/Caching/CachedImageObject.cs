using System.Buffers;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - An IImageObject read through an ImageCache: blocks present in the cache are read from its file (every touched
//   sector verified), missing ones are fetched from the inner object, stored, and served.
// - Latency hiding: the missing blocks of one read are claimed together; adjacent ones are coalesced into one inner
//   read of at most MaxRequestBytes, and several such runs are fetched in parallel (one on the caller's thread, the
//   others on their own threads). Blocks another reader (or a readahead) is already fetching are waited for, never
//   requested twice. Reads feed a SequentialStreamTracker: while a stream stays sequential its window grows (up to
//   MaxReadaheadBytes) and the blocks ahead are fetched in the background (the cache's worker threads, bounded
//   concurrency); a seek starts a new stream with no window. Prefetch fetches a range in the background the same way,
//   within a budget per object (MaxPrefetchBytes, at most a quarter of the capacity) for all its hints together.
// - Faults: a failed inner read fails the reads that fetched or waited for it (IOException, or InvalidDataException
//   when the object is shorter than its length said); nothing is marked present, so a later read asks the inner
//   object again (which retries with backoff itself). Background fetches fail silently (the reader that needs the
//   block fetches it itself). A cache file that cannot be written only means the bytes are served uncached.
// - A block evicted or found damaged between planning and reading is planned again; after a few rounds (a cache too
//   small for the readers' working set) the remaining bytes are read from the inner object directly.
// - Threading: thread-safe (IImageObject); Dispose waits for this object's running background fetches (queued ones
//   are skipped) and must not race with reads.
// - Not done: reading ahead backwards or in strides; cancelling an inner read in progress.

/// <summary>An image object whose bytes come through a persistent <see cref="ImageCache"/>.</summary>
public sealed class CachedImageObject : IImageObject
{
    private const int MaxAttempts = 4;
    private readonly ImageCache _cache;
    private readonly CachedImage _image;
    private readonly IImageObject _inner;
    private readonly object _gate = new();
    private int _running;
    private long _prefetchBudget;
    private long _prefetchFirst = long.MaxValue; // the blocks of the last prefetch hints (a range), under _gate
    private long _prefetchLast = -1;
    private bool _disposed;

    internal CachedImageObject(ImageCache cache, CachedImage image, IImageObject inner)
    {
        _cache = cache;
        _image = image;
        _inner = inner;
        _prefetchBudget = Math.Min(cache.Options.MaxPrefetchBytes, cache.CapacityBytes / 4);
    }

    /// <inheritdoc/>
    public string Location => _inner.Location;

    /// <inheritdoc/>
    public long Length => _image.Length;

    /// <inheritdoc/>
    public ImageFileStatus? LocalStatus => _inner.LocalStatus;

    /// <summary>The image's identity (from its header).</summary>
    public Guid ImageId => _image.Id;

    internal bool IsOpen => !Volatile.Read(ref _disposed);

    /// <inheritdoc/>
    public void ReadExactly(long offset, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        if (offset < 0 || offset > Length - destination.Length)
        {
            throw new InvalidDataException($"{Location}: unexpected end of file at offset {Math.Clamp(offset, 0, Length)}: the image is truncated");
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        ReadAhead(offset, destination.Length);
        int shift = _cache.BlockShift;
        long first = offset >> shift;
        long last = (offset + destination.Length - 1) >> shift;
        var served = new bool[last - first + 1];
        var slots = new List<ImageCache.Slot>();
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            _cache.Plan(_image, first, last, foreground: true, missingOnly: false, served, slots);
            if (slots.Count == 0)
            {
                return;
            }

            ReadPlanned(offset, destination, first, served, slots);
        }

        // The cache keeps losing the blocks (far too small for the readers): read the rest straight from the object.
        for (long b = first; b <= last; b++)
        {
            if (!served[b - first])
            {
                var (lo, hi) = Overlap(b, offset, destination.Length);
                _inner.ReadExactly(lo, destination.Slice((int)(lo - offset), (int)(hi - lo)));
                _cache.Counters.AddFetched(hi - lo, background: false);
            }
        }
    }

    /// <inheritdoc/>
    public bool Refetch(long offset, long length)
    {
        if (length <= 0 || offset < 0 || offset >= Length || _disposed)
        {
            return false;
        }

        // Whatever was cached of the range is dropped; reading it again asks the inner object (or takes the copy a
        // concurrent reader fetched from it meanwhile), so a second attempt is always worth it.
        _cache.DropRange(_image, offset, length);
        return true;
    }

    /// <inheritdoc/>
    public void Prefetch(long offset, long length)
    {
        if (length <= 0 || offset < 0 || offset >= Length || _disposed)
        {
            return;
        }

        // Every hint spends from one budget per object, in whole blocks: a caller hinting at many small ranges (the
        // index pages of a huge image) cannot make this fetch more than the budget.
        // Ascending hints (one per index page) that share a block are charged and queued once.
        int shift = _cache.BlockShift;
        long from, to;
        lock (_gate)
        {
            from = offset >> shift;
            to = (Math.Min(Length, offset + length) - 1) >> shift;
            if (from >= _prefetchFirst && to <= _prefetchLast)
            {
                return;
            }

            if (from >= _prefetchFirst && from <= _prefetchLast)
            {
                from = _prefetchLast + 1;
            }

            to = Math.Min(to, from + (_prefetchBudget >> shift) - 1);
            if (to < from)
            {
                return;
            }

            _prefetchBudget -= (to - from + 1) << shift;
            if (from != _prefetchLast + 1)
            {
                _prefetchFirst = from;
            }

            _prefetchLast = to;
        }

        _cache.Enqueue(this, from, to);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            while (_running > 0)
            {
                Monitor.Wait(_gate);
            }
        }

        _cache.Detach(_image);
        _inner.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => Location;

    /// <summary>A background fetch of the missing blocks among <paramref name="from"/>..<paramref name="to"/> (cache worker thread).</summary>
    internal void RunBackground(long from, long to)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _running++;
        }

        try
        {
            var slots = new List<ImageCache.Slot>();
            _cache.Plan(_image, from, to, foreground: false, missingOnly: true, default, slots);
            foreach (var run in Runs(slots))
            {
                byte[]? buffer = null;
                try
                {
                    buffer = FetchRun(run, background: true).Buffer;
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ObjectDisposedException or OperationCanceledException)
                {
                    // A readahead that fails costs nothing: the reader that needs the block fetches it itself.
                }
                finally
                {
                    if (buffer != null)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // The cache is being disposed.
        }
        finally
        {
            lock (_gate)
            {
                _running--;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void ReadAhead(long offset, int length)
    {
        if (_cache.Options.MaxReadaheadBytes > 0 && _cache.Track(_image, offset, length, out long from, out long to))
        {
            _cache.Enqueue(this, from, to);
        }
    }

    // One round of a read: fetch what this read claimed (runs in parallel), read what is present, wait for the rest.
    private void ReadPlanned(long offset, Span<byte> destination, long first, bool[] served, List<ImageCache.Slot> slots)
    {
        var runs = Runs(slots);
        var others = new Task<Fetched>[Math.Max(0, runs.Count - 1)];
        for (int i = 0; i < others.Length; i++)
        {
            var run = runs[i + 1];
            others[i] = Task.Factory.StartNew(() => FetchRun(run, background: false), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        Exception? failure = null;
        try
        {
            if (runs.Count > 0)
            {
                var mine = FetchRun(runs[0], background: false);
                CopyOut(mine, offset, destination, first, served);
            }
        }
        catch (Exception e)
        {
            failure = e;
        }

        int hits = 0;
        foreach (var slot in slots)
        {
            if (failure == null && slot.Kind == ImageCache.SlotKind.Present)
            {
                var (lo, hi) = Overlap(slot.Block, offset, destination.Length);
                if (_cache.TryReadCached(slot.Entry!, lo, destination.Slice((int)(lo - offset), (int)(hi - lo))))
                {
                    served[slot.Block - first] = true;
                    hits++;
                }
            }
        }

        _cache.Counters.CountHit(hits);
        foreach (var task in others)
        {
            try
            {
                CopyOut(task.GetAwaiter().GetResult(), offset, destination, first, served);
            }
            catch (Exception e)
            {
                failure ??= e;
            }
        }

        if (failure != null)
        {
            throw failure;
        }

        foreach (var slot in slots)
        {
            if (slot.Kind == ImageCache.SlotKind.Wait)
            {
                slot.Fetch!.Done.Task.GetAwaiter().GetResult();
                if (slot.Fetch.Foreground && slot.Fetch.Error is { } error)
                {
                    throw Failure(error, slot.Block << _cache.BlockShift, _cache.BlockLength(_image, slot.Block));
                }
            }
        }
    }

    private void CopyOut(Fetched fetched, long offset, Span<byte> destination, long first, bool[] served)
    {
        try
        {
            long lo = Math.Max(offset, fetched.Start);
            long hi = Math.Min(offset + destination.Length, fetched.Start + fetched.Length);
            fetched.Buffer.AsSpan((int)(lo - fetched.Start), (int)(hi - lo)).CopyTo(destination[(int)(lo - offset)..]);
            for (long b = fetched.Start >> _cache.BlockShift; b <= (fetched.Start + fetched.Length - 1) >> _cache.BlockShift; b++)
            {
                served[b - first] = true;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(fetched.Buffer);
        }
    }

    // Fetches the claimed blocks of one run with one inner read, stores them and ends their claims. The caller returns
    // the buffer to the pool.
    private Fetched FetchRun(List<ImageCache.Slot> run, bool background)
    {
        int shift = _cache.BlockShift;
        long start = run[0].Block << shift;
        int length = (int)Math.Min((long)run.Count << shift, Length - start);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            _inner.ReadExactly(start, buffer.AsSpan(0, length));
        }
        catch (Exception e)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            foreach (var slot in run)
            {
                _cache.Complete(_image, slot.Block, slot.Fetch!, null, stored: false, e);
            }

            throw Failure(e, start, length);
        }

        _cache.Counters.AddFetched(length, background);
        if (!background)
        {
            _cache.Counters.CountMiss(run.Count);
        }

        const int sector = ImageCacheOptions.SectorSize;
        int completed = 0;
        try
        {
            foreach (var slot in run)
            {
                int at = (int)((slot.Block << shift) - start);
                int blockLength = _cache.BlockLength(_image, slot.Block);
                var bytes = buffer.AsSpan(at, blockLength);
                var crcs = new uint[(blockLength + sector - 1) / sector];
                for (int s = 0; s < crcs.Length; s++)
                {
                    crcs[s] = Crc32C.Compute(bytes.Slice(s * sector, Math.Min(sector, blockLength - (s * sector))));
                }

                bool stored = slot.Fetch!.Reserved && _cache.TryStore(_image, slot.Block << shift, bytes);
                completed++;
                _cache.Complete(_image, slot.Block, slot.Fetch, crcs, stored, null);
            }
        }
        finally
        {
            // Whatever happened, no claim stays open: waiters would wait forever.
            for (int i = completed; i < run.Count; i++)
            {
                _cache.Complete(_image, run[i].Block, run[i].Fetch!, null, stored: false, null);
            }
        }

        return new Fetched(buffer, start, length);
    }

    private Exception Failure(Exception e, long start, int length) => e switch
    {
        InvalidDataException => new InvalidDataException($"{Location}: cannot read {length} bytes at offset {start}: {e.Message}", e),
        _ => new IOException($"{Location}: cannot read {length} bytes at offset {start}: {e.Message}", e),
    };

    // The claimed slots grouped into runs of adjacent blocks, each at most MaxRequestBytes.
    private List<List<ImageCache.Slot>> Runs(List<ImageCache.Slot> slots)
    {
        int maxRun = Math.Max(1, _cache.Options.MaxRequestBytes >> _cache.BlockShift);
        var runs = new List<List<ImageCache.Slot>>();
        List<ImageCache.Slot>? current = null;
        foreach (var slot in slots)
        {
            if (slot.Kind != ImageCache.SlotKind.Claimed)
            {
                continue;
            }

            if (current == null || current.Count == maxRun || current[^1].Block != slot.Block - 1)
            {
                current = [];
                runs.Add(current);
            }

            current.Add(slot);
        }

        return runs;
    }

    private (long Lo, long Hi) Overlap(long block, long offset, int length)
    {
        long start = block << _cache.BlockShift;
        return (Math.Max(offset, start), Math.Min(offset + length, start + _cache.BlockSize));
    }

    private readonly record struct Fetched(byte[] Buffer, long Start, int Length);
}
