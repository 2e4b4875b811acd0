using System.Buffers;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - A persistent, bounded cache of image bytes fetched from (remote) IImageObjects, one per cache directory. Wrap
//   gives a CachedImageObject over any inner object; entries are keyed by the image's identity (ImageHeader.ImageId
//   read through the inner object, plus the object's length) and block number, so every object, plugin, chain and
//   process that reads the same image shares them, and they survive remounts. Images are immutable: an entry never
//   goes stale; the only way it can be wrong is damage, which is detected and never served (below).
// - Layout in the directory: "lock" (flock'ed for the life of the cache: one process owns a directory at a time; a
//   second one gets a private temporary cache and a warning), "index" (CacheIndexFile: the persisted presence map),
//   and one sparse data file per image, "<id>-<length>.data", holding each cached block at its own offset.
// - Blocks: BlockSize (1 MiB) aligned in the object, always fetched and stored whole (the last block of an object may
//   be short). Each present block carries the CRC-32C of each 64 KiB sector; every read from the cache file verifies
//   the sectors it touches, so a damaged, half-written or punched-out block is dropped and fetched again, never
//   served. Readers above verify too (chunk CRC, GCM) and call Refetch, which drops the blocks of the range.
// - Crash consistency: a block becomes present only after its bytes were written to the data file (in-process the
//   page cache serves them); Flush (every FlushInterval when something changed, and at dispose) snapshots the present
//   blocks, fdatasyncs the data files written since the last flush, then writes the index to index.tmp, fsyncs it and
//   renames it over "index". So the persisted index only lists blocks whose bytes were durable first. Blocks evicted
//   after a snapshot may still be listed after a crash; their punched (zero) bytes fail the sector checksum and are
//   refetched. At open, data written but never listed (a crash before the flush) is punched out, data files of no
//   listed block are removed, and an unusable index makes the cache start empty.
// - Bound: CapacityBytes over the blocks on disk (each rounded up to 4 KiB) plus the bytes reserved by fetches in
//   flight; room is made by evicting the least recently used blocks (fallocate PUNCH_HOLE), so the files stay within
//   the bound as `du` counts it. A punched block is "in flight" until the punch ends, so nobody reads or refills it
//   meanwhile. When every block is in flight, a fetch is served without being stored.
// - Background work (readahead, prefetch) runs on BackgroundFetches dedicated threads fed from one queue
//   (BackgroundFetchQueue); the counters are ImageCacheCounters. The LRU and eviction bookkeeping is in
//   ImageCache.Eviction.cs, the index's persistence (Flush, Load) in ImageCache.Persistence.cs.
// - Threading: one lock guards all maps (images, blocks, LRU, in-flight fetches, byte counts); file I/O and inner
//   reads happen outside it. Counters are Interlocked. Dispose the CachedImageObjects before the cache.
// - Security: the directory and its files are opened symlink-safely (CacheDirectory), files 0600, directory 0700.
// - Not done: sharing one directory between processes at the same time (a second process gets a private cache);
//   accounting of the file system's own metadata; a fall-back when the file system cannot punch holes (the bound is
//   then not kept on disk; a warning says so); validating cached bytes against the object beyond the header check at
//   Wrap (the object's identity is its image id and length).

/// <summary>A persistent, bounded, crash-consistent cache of image bytes in one directory, shared by every image read through it.</summary>
public sealed partial class ImageCache : IDisposable
{
    private readonly object _lock = new();
    private readonly object _flushLock = new();
    private readonly CacheDirectory _dir;
    private readonly ImageCacheOptions _options;
    private readonly Dictionary<(Guid Id, long Length), CachedImage> _images = [];
    private readonly LinkedList<CacheEntry> _lru = new(); // First: most recently used
    private readonly ImageCacheCounters _counters = new();
    private readonly BackgroundFetchQueue _background;
    private readonly Timer _flushTimer;
    private long _storedBytes;
    private long _reservedBytes;
    private bool _dirty;
    private bool _disposed;
    private int _warnedWrite;
    private int _warnedPunch;
    private int _warnedFlush;
    private int _warnedOpen;

    private ImageCache(CacheDirectory dir, ImageCacheOptions options, long capacity)
    {
        _dir = dir;
        _options = options;
        CapacityBytes = capacity;
        BlockShift = System.Numerics.BitOperations.Log2((uint)options.BlockSize);
        Load();
        _background = new BackgroundFetchQueue(options.BackgroundFetches);

        _flushTimer = new Timer(_ => FlushQuietly(), null, options.FlushInterval, options.FlushInterval);
    }

    /// <summary>The cache directory in use (a private temporary one when <see cref="IsPrivate"/>).</summary>
    public string Directory => _dir.Path;

    /// <summary>Whether the requested directory was locked by another process and a private temporary cache is used.</summary>
    public bool IsPrivate => _dir.IsPrivate;

    /// <summary>The bound on the bytes kept on disk.</summary>
    public long CapacityBytes { get; }

    /// <summary>Counters since the cache was opened.</summary>
    public ImageCacheStatistics Statistics
    {
        get
        {
            long stored;
            lock (_lock)
            {
                stored = _storedBytes;
            }

            return _counters.Snapshot(stored, CapacityBytes, IsPrivate);
        }
    }

    internal ImageCacheOptions Options => _options;

    /// <summary>The running counters (CachedImageObject counts its hits, misses and fetches there).</summary>
    internal ImageCacheCounters Counters => _counters;

    internal int BlockShift { get; }

    internal int BlockSize => _options.BlockSize;

    /// <summary>
    /// Opens the cache in <paramref name="directory"/> (created 0700 when missing). When another process holds it, a
    /// private temporary cache (removed at dispose, at most <see cref="ImageCacheOptions.PrivateCapacityBytes"/>) is
    /// used instead and <see cref="ImageCacheOptions.Warning"/> says so.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be created or opened, is a symlink, or belongs to another user.</exception>
    public static ImageCache Open(string directory, ImageCacheOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new ImageCacheOptions();
        options.Validate();
        long capacity = options.CapacityBytes;
        var dir = CacheDirectory.TryOpenLocked(directory);
        if (dir == null)
        {
            dir = CacheDirectory.CreatePrivate();
            capacity = Math.Min(capacity, options.PrivateCapacityBytes);
            options.Warning?.Invoke($"{Path.GetFullPath(directory)}: the cache directory is in use by another process; using a private temporary cache in {dir.Path} (at most {capacity >> 20} MiB, removed at exit)");
        }

        try
        {
            return new ImageCache(dir, options, capacity);
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A cached view of <paramref name="inner"/>, which the result owns from then on (the caller still owns it if this
    /// throws). Reads the 512-byte header through <paramref name="inner"/> to learn the image's identity.
    /// </summary>
    /// <exception cref="InvalidDataException">The object does not start with a valid image header.</exception>
    /// <exception cref="IOException">The header cannot be read.</exception>
    public IImageObject Wrap(IImageObject inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ObjectDisposedException.ThrowIf(_disposed, this);
        long length = inner.Length;
        if (length < ImageHeader.Size)
        {
            throw new InvalidDataException($"{inner.Location}: not a backup image (file is shorter than the {ImageHeader.Size}-byte header)");
        }

        var header = new byte[ImageHeader.Size];
        inner.ReadExactly(0, header);
        _counters.AddFetched(header.Length, background: false);
        var parsed = ImageHeader.Parse(header, inner.Location);
        CachedImage image;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key = (parsed.ImageId, length);
            if (!_images.TryGetValue(key, out image!))
            {
                image = NewImage(parsed.ImageId, length);
                _images.Add(key, image);
            }

            image.OpenObjects++;
        }

        var result = new CachedImageObject(this, image, inner);
        try
        {
            CheckCachedHeader(image, header);
        }
        catch
        {
            result.Dispose(); // gives the open count back (and the inner object, which the caller then must not dispose)
            throw;
        }

        return result;
    }

    /// <summary>Stops the background fetches, writes the index and releases the directory (a private one is removed).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _background.Dispose();

        using (var stopped = new ManualResetEvent(false))
        {
            if (_flushTimer.Dispose(stopped))
            {
                stopped.WaitOne(); // a flush still running must end before the files are closed
            }
        }

        if (!IsPrivate)
        {
            FlushQuietly();
        }

        lock (_lock)
        {
            foreach (var image in _images.Values)
            {
                image.Data?.Dispose();
            }
        }

        _dir.Dispose();
    }

    /// <summary>Bytes a block of <paramref name="length"/> bytes takes on disk (rounded up to 4 KiB).</summary>
    internal static long DiskBytes(int length) => (length + 4095L) & ~4095L;

    /// <summary>A block's place in a read: served from the cache, being fetched by someone else, or claimed by the caller.</summary>
    internal enum SlotKind
    {
        /// <summary>Present: read it from the cache file.</summary>
        Present,

        /// <summary>Being fetched (or punched) by someone else: wait, then look again.</summary>
        Wait,

        /// <summary>Missing and now claimed by the caller, who must fetch it and call Complete.</summary>
        Claimed,
    }

    /// <summary>One block of a planned read.</summary>
    internal readonly record struct Slot(long Block, SlotKind Kind, CacheEntry? Entry, BlockFetch? Fetch);

    /// <summary>
    /// Classifies blocks <paramref name="first"/>..<paramref name="last"/> of <paramref name="image"/> (skipping those
    /// <paramref name="skip"/> marks) and claims the missing ones. <paramref name="missingOnly"/>: only missing blocks
    /// are listed (background fetches).
    /// </summary>
    internal void Plan(CachedImage image, long first, long last, bool foreground, bool missingOnly, ReadOnlySpan<bool> skip, List<Slot> slots)
    {
        slots.Clear();
        List<PendingPunch>? punches = null;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            bool usable = TryEnsureData(image);
            if (!usable)
            {
                ForgetAll(image); // its file cannot be opened (a planted symlink): nothing of it can be served from here
            }

            for (long b = first; b <= last; b++)
            {
                if (!skip.IsEmpty && skip[(int)(b - first)])
                {
                    continue;
                }

                if (image.Present.TryGetValue(b, out var entry))
                {
                    if (!missingOnly)
                    {
                        _lru.Remove(entry.Node!);
                        _lru.AddFirst(entry.Node!);
                        slots.Add(new Slot(b, SlotKind.Present, entry, null));
                    }
                }
                else if (image.InFlight.TryGetValue(b, out var fetch))
                {
                    if (!missingOnly)
                    {
                        slots.Add(new Slot(b, SlotKind.Wait, null, fetch));
                    }
                }
                else
                {
                    var claim = new BlockFetch(foreground);
                    claim.Reserved = usable && TryReserve(DiskBytes(BlockLength(image, b)), ref punches);
                    image.InFlight.Add(b, claim);
                    slots.Add(new Slot(b, SlotKind.Claimed, null, claim));
                }
            }
        }

        Punch(punches);
    }

    /// <summary>Ends a claim: on success with <paramref name="stored"/> the block becomes present; waiters are released.</summary>
    internal void Complete(CachedImage image, long block, BlockFetch fetch, uint[]? sectorCrcs, bool stored, Exception? error)
    {
        int length = BlockLength(image, block);
        lock (_lock)
        {
            image.InFlight.Remove(block);
            if (fetch.Reserved)
            {
                _reservedBytes -= DiskBytes(length);
            }

            if (error == null && stored && !_disposed)
            {
                var entry = new CacheEntry(image, block, length, sectorCrcs!);
                entry.Node = _lru.AddFirst(entry);
                image.Present.Add(block, entry);
                _storedBytes += entry.DiskBytes;
                image.DataDirty = true;
                _dirty = true;
            }

            fetch.Error = error;
        }

        fetch.Done.TrySetResult();
    }

    /// <summary>Writes fetched bytes to the image's data file; false (and one warning) when that fails.</summary>
    internal bool TryStore(CachedImage image, long offset, ReadOnlySpan<byte> bytes)
    {
        try
        {
            RandomAccess.Write(image.Data!, bytes, offset);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            PunchRange(image, offset, bytes.Length); // a partial write (disk full) must not hold space outside the bound
            if (Interlocked.Exchange(ref _warnedWrite, 1) == 0)
            {
                _options.Warning?.Invoke($"{_dir.Path}/{image.DataName}: cannot write to the cache ({e.Message}); reads go to the object store until it works again");
            }

            return false;
        }
    }

    /// <summary>
    /// Reads <paramref name="destination"/> at <paramref name="offset"/> (inside the block of <paramref name="entry"/>)
    /// from the cache file, verifying every sector it touches. False when the bytes are not right (the entry is then
    /// dropped if it is still current: damage, or an eviction that raced with this read).
    /// </summary>
    internal bool TryReadCached(CacheEntry entry, long offset, Span<byte> destination)
    {
        const int sector = ImageCacheOptions.SectorSize;
        long blockStart = (long)entry.Block << BlockShift;
        int lo = (int)(offset - blockStart);
        int hi = lo + destination.Length;
        int sLo = lo & ~(sector - 1);
        int sHi = Math.Min((hi + sector - 1) & ~(sector - 1), entry.Length);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(sHi - sLo);
        try
        {
            var span = buffer.AsSpan(0, sHi - sLo);
            int got = 0;
            try
            {
                while (got < span.Length)
                {
                    int n = RandomAccess.Read(entry.Image.Data!, span[got..], blockStart + sLo + got);
                    if (n <= 0)
                    {
                        break;
                    }

                    got += n;
                }
            }
            catch (IOException)
            {
                got = -1; // an unreadable cache file is damage like any other: fetch the block again
            }

            bool good = got == span.Length;
            for (int s = sLo; good && s < sHi; s += sector)
            {
                good = Crc32C.Compute(span.Slice(s - sLo, Math.Min(sector, entry.Length - s))) == entry.SectorCrcs[s / sector];
            }

            if (!good)
            {
                Drop(entry, damaged: true);
                return false;
            }

            span.Slice(lo - sLo, destination.Length).CopyTo(destination);
            _counters.AddServed(destination.Length);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Notes a read for readahead; true when blocks <paramref name="from"/>..<paramref name="to"/> should be fetched ahead.</summary>
    internal bool Track(CachedImage image, long offset, int length, out long from, out long to)
    {
        lock (_lock)
        {
            return image.Tracker.Track(offset, length, allowReadahead: true, out from, out to);
        }
    }

    /// <summary>Queues a background fetch of blocks <paramref name="from"/>..<paramref name="to"/> for <paramref name="owner"/>.</summary>
    internal void Enqueue(CachedImageObject owner, long from, long to) => _background.Enqueue(owner, from, to, _options.MaxRequestBytes >> BlockShift);

    internal void Detach(CachedImage image)
    {
        lock (_lock)
        {
            image.OpenObjects--;
        }
    }

    /// <summary>Bytes of block <paramref name="block"/> of <paramref name="image"/>.</summary>
    internal int BlockLength(CachedImage image, long block) => (int)Math.Min(BlockSize, image.Length - (block << BlockShift));

    private CachedImage NewImage(Guid id, long length) => new(id, length, BlockShift, _options.MaxReadaheadBytes >> BlockShift);

    // The cached blocks of an image are keyed by its id and length only; block 0 holds its header (with the creation
    // time and, for an incremental, the parent binding), which another object with the same id and length does not
    // reproduce unless it is the same image. So the entries are used only while block 0 is cached and equals the
    // header just read from the store; without block 0 (evicted) nothing vouches for them and they are dropped.
    private void CheckCachedHeader(CachedImage image, byte[] header)
    {
        CacheEntry? entry;
        bool vouched;
        lock (_lock)
        {
            if (image.Present.Count == 0)
            {
                return;
            }

            vouched = image.Present.TryGetValue(0, out entry) && TryEnsureData(image);
        }

        // A damaged block 0 is dropped by TryReadCached itself.
        var cached = new byte[header.Length];
        if (vouched && TryReadCached(entry!, 0, cached) && cached.AsSpan().SequenceEqual(header))
        {
            return;
        }

        if (vouched)
        {
            _options.Warning?.Invoke($"{_dir.Path}/{image.DataName}: the cached copy does not match the object's header; dropping it");
        }

        List<CacheEntry> all;
        lock (_lock)
        {
            all = [.. image.Present.Values];
        }

        foreach (var e in all)
        {
            Drop(e, damaged: vouched);
        }
    }

    // Under _lock (or in the constructor). Opens the image's data file; false (and one warning) when it cannot be.
    private bool TryEnsureData(CachedImage image)
    {
        if (image.Data != null)
        {
            return true;
        }

        try
        {
            image.Data = _dir.OpenFile(image.DataName, create: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (Interlocked.Exchange(ref _warnedOpen, 1) == 0)
            {
                _options.Warning?.Invoke($"{e.Message}; that image is read without the cache");
            }

            return false;
        }
    }
}
