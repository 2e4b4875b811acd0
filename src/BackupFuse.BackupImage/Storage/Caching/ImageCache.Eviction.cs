namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The LRU and eviction bookkeeping of ImageCache: every present block is in the LRU list (first: most recently
//   used) and counted in _storedBytes (rounded up to 4 KiB); a fetch in flight reserves its bytes in _reservedBytes.
//   Room is made by evicting from the LRU's end until stored + reserved + new fits CapacityBytes.
// - Dropping a block (eviction, damage, Refetch) is two-phase: under _lock it leaves the maps and a placeholder fetch
//   marks it "in flight", so nobody reads or refills it; outside the lock its bytes are punched out (fallocate
//   PUNCH_HOLE, so `du` sees the bound), then the placeholder is released. A file system that cannot punch gets one
//   warning (the bound is then not kept on disk).
// - Threading: methods marked "under _lock" must be called holding it; Punch and PunchRange never are.

/// <summary>The LRU and eviction part of <see cref="ImageCache"/>.</summary>
public sealed partial class ImageCache
{
    /// <summary>Drops a present block (if it still is) and punches it out.</summary>
    internal void Drop(CacheEntry entry, bool damaged)
    {
        List<PendingPunch>? punches = null;
        lock (_lock)
        {
            if (entry.Node == null || _disposed)
            {
                return; // already dropped or evicted (an eviction that raced with a read reads as damage there)
            }

            Remove(entry, ref punches);
            if (damaged)
            {
                _counters.CountDamaged();
            }
        }

        Punch(punches);
    }

    /// <summary>Drops every present block overlapping the range (Refetch); true when any was dropped.</summary>
    internal bool DropRange(CachedImage image, long offset, long length)
    {
        List<PendingPunch>? punches = null;
        bool any = false;
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }

            long last = Math.Min(offset + length - 1, image.Length - 1) >> BlockShift;
            for (long b = Math.Max(0, offset) >> BlockShift; b <= last; b++)
            {
                if (image.Present.TryGetValue(b, out var entry))
                {
                    Remove(entry, ref punches);
                    _counters.CountDamaged();
                    any = true;
                }
            }
        }

        Punch(punches);
        return any;
    }

    // Under _lock. Makes room for `bytes` by evicting least recently used blocks; false when that is impossible.
    private bool TryReserve(long bytes, ref List<PendingPunch>? punches)
    {
        while (_storedBytes + _reservedBytes + bytes > CapacityBytes)
        {
            var oldest = _lru.Last;
            if (oldest == null)
            {
                return false;
            }

            Remove(oldest.Value, ref punches);
            _counters.CountEviction();
        }

        _reservedBytes += bytes;
        return true;
    }

    // Under _lock. Drops a present entry; its block stays "in flight" until the punch is done.
    private void Remove(CacheEntry entry, ref List<PendingPunch>? punches)
    {
        _lru.Remove(entry.Node!);
        entry.Node = null;
        entry.Image.Present.Remove(entry.Block);
        _storedBytes -= entry.DiskBytes;
        _dirty = true;
        TryEnsureData(entry.Image);
        var placeholder = new BlockFetch(foreground: false);
        entry.Image.InFlight.Add(entry.Block, placeholder);
        (punches ??= []).Add(new PendingPunch(entry.Image, entry.Block, entry.Length, placeholder));
    }

    // Outside _lock.
    private void Punch(List<PendingPunch>? punches)
    {
        if (punches == null)
        {
            return;
        }

        foreach (var p in punches)
        {
            PunchRange(p.Image, (long)p.Block << BlockShift, p.Length);
            lock (_lock)
            {
                if (p.Image.InFlight.TryGetValue(p.Block, out var f) && f == p.Placeholder)
                {
                    p.Image.InFlight.Remove(p.Block);
                }
            }

            p.Placeholder.Done.TrySetResult();
        }
    }

    private void PunchRange(CachedImage image, long offset, long length)
    {
        try
        {
            if (image.Data != null && !image.Data.IsClosed
                && CacheNative.Fallocate(image.Data, CacheNative.FallocPunchHole | CacheNative.FallocKeepSize, offset, length) != 0
                && Interlocked.Exchange(ref _warnedPunch, 1) == 0)
            {
                _options.Warning?.Invoke($"{_dir.Path}: cannot punch holes in cache files ({CacheNative.LastError(out _)}); the cache may use more disk than its bound");
            }
        }
        catch (ObjectDisposedException)
        {
            // The cache is being disposed: the index will not list the block anyway.
        }
    }

    // Under _lock (or in the constructor). Forgets every present block of the image (its file is unusable).
    private void ForgetAll(CachedImage image)
    {
        foreach (var entry in image.Present.Values)
        {
            _lru.Remove(entry.Node!);
            entry.Node = null;
            _storedBytes -= entry.DiskBytes;
            _dirty = true;
        }

        image.Present.Clear();
    }

    private readonly record struct PendingPunch(CachedImage Image, long Block, int Length, BlockFetch Placeholder);
}
