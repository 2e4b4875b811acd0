using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The persistence of ImageCache's presence map. Flush snapshots the present blocks (oldest first) under _lock,
//   fdatasyncs the data files written since the last flush, then writes index.tmp, syncs it and renames it over
//   "index": the persisted index only lists blocks whose bytes were durable first. A failed flush marks everything
//   dirty again. FlushQuietly (the timer, dispose) turns a failure into one warning.
// - Load (in the constructor, before any other thread exists) reads the index (an unusable one: start empty, with a
//   warning), rebuilds the maps and the LRU, removes data files of no listed block and index.tmp, punches out data
//   written but never listed (a crash before the flush), and evicts down to a bound that shrank since the last run.

/// <summary>The index persistence part of <see cref="ImageCache"/>.</summary>
public sealed partial class ImageCache
{
    /// <summary>Makes the presence index durable now (it is also written every FlushInterval and at dispose).</summary>
    /// <exception cref="IOException">The index cannot be written.</exception>
    public void Flush()
    {
        lock (_flushLock)
        {
            List<CacheIndexFile.Record> records;
            List<CachedImage> written;
            lock (_lock)
            {
                if (!_dirty)
                {
                    return;
                }

                _dirty = false;
                records = new List<CacheIndexFile.Record>(_lru.Count);
                for (var node = _lru.Last; node != null; node = node.Previous)
                {
                    var e = node.Value;
                    records.Add(new CacheIndexFile.Record(e.Image.Id, e.Image.Length, e.Block, e.Length, e.SectorCrcs));
                }

                written = _images.Values.Where(i => i.DataDirty && i.Data != null).ToList();
                foreach (var i in written)
                {
                    i.DataDirty = false;
                }
            }

            try
            {
                foreach (var image in written)
                {
                    if (CacheNative.Fdatasync(image.Data!) != 0)
                    {
                        throw new IOException($"{_dir.Path}/{image.DataName}: fdatasync failed: {CacheNative.LastError(out _)}");
                    }
                }

                byte[] bytes = CacheIndexFile.Serialize(BlockSize, records);
                using (var tmp = _dir.OpenFile(CacheIndexFile.TempName, create: true, truncate: true))
                {
                    RandomAccess.Write(tmp, bytes, 0);
                    if (CacheNative.Fdatasync(tmp) != 0)
                    {
                        throw new IOException($"{_dir.Path}/{CacheIndexFile.TempName}: fdatasync failed: {CacheNative.LastError(out _)}");
                    }
                }

                _dir.Replace(CacheIndexFile.TempName, CacheIndexFile.Name);
            }
            catch
            {
                lock (_lock)
                {
                    _dirty = true;
                    foreach (var i in written)
                    {
                        i.DataDirty = true;
                    }
                }

                throw;
            }
        }
    }

    private void FlushQuietly()
    {
        try
        {
            Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            if (Interlocked.Exchange(ref _warnedFlush, 1) == 0)
            {
                _options.Warning?.Invoke($"{_dir.Path}: cannot write the cache index ({e.Message}); cached blocks will be fetched again after a restart");
            }
        }
    }

    private void Load()
    {
        List<CacheIndexFile.Record>? records = null;
        try
        {
            using var index = _dir.OpenFile(CacheIndexFile.Name, create: false);
            long length = RandomAccess.GetLength(index);
            var bytes = new byte[length];
            int got = 0;
            while (got < bytes.Length)
            {
                int n = RandomAccess.Read(index, bytes.AsSpan(got), got);
                if (n <= 0)
                {
                    break;
                }

                got += n;
            }

            records = CacheIndexFile.TryParse(bytes.AsSpan(0, got), BlockSize, out string? problem);
            if (records == null)
            {
                _options.Warning?.Invoke($"{_dir.Path}/{CacheIndexFile.Name}: cache index unusable ({problem}); starting with an empty cache");
            }
        }
        catch (FileNotFoundException)
        {
            // A new cache.
        }
        catch (IOException e)
        {
            // Not a regular file of ours (a symlink someone with access to the directory planted), or unreadable.
            _options.Warning?.Invoke($"{e.Message}; starting with an empty cache");
            _dir.Delete(CacheIndexFile.Name);
        }

        foreach (var r in records ?? [])
        {
            if (r.ObjectLength < ImageHeader.Size || r.Block < 0 || r.Block > (r.ObjectLength - 1) >> BlockShift)
            {
                continue;
            }

            var key = (r.Id, r.ObjectLength);
            if (!_images.TryGetValue(key, out var image))
            {
                image = NewImage(r.Id, r.ObjectLength);
                _images.Add(key, image);
            }

            int length = BlockLength(image, r.Block);
            if (r.BlockLength != length || r.SectorCrcs.Length != (length + ImageCacheOptions.SectorSize - 1) / ImageCacheOptions.SectorSize || image.Present.ContainsKey(r.Block))
            {
                continue;
            }

            var entry = new CacheEntry(image, r.Block, length, r.SectorCrcs);
            entry.Node = _lru.AddFirst(entry); // records are oldest first
            image.Present.Add(r.Block, entry);
            _storedBytes += entry.DiskBytes;
        }

        foreach (string name in _dir.ListNames())
        {
            if (name == CacheIndexFile.TempName)
            {
                _dir.Delete(name);
            }
            else if (CachedImage.TryParseDataName(name, out var id, out long length))
            {
                if (!_images.TryGetValue((id, length), out var image) || image.Present.Count == 0)
                {
                    _dir.Delete(name);
                }
                else if (TryEnsureData(image))
                {
                    PunchUnlisted(image);
                }
                else
                {
                    _dir.Delete(name); // removes a planted symlink itself, never its target
                    ForgetAll(image);
                }
            }
        }

        List<PendingPunch>? punches = null;
        if (_storedBytes > CapacityBytes)
        {
            TryReserve(0, ref punches); // the bound shrank since the last run
            _dirty = true;
        }

        Punch(punches);
    }

    // Punches every allocated range of the image's data file that holds no listed block (written before a crash).
    private void PunchUnlisted(CachedImage image)
    {
        long at = 0;
        while (true)
        {
            long data = CacheNative.Lseek(image.Data!, at, CacheNative.SeekData);
            if (data < 0)
            {
                return; // ENXIO: no data after `at`
            }

            long hole = CacheNative.Lseek(image.Data!, data, CacheNative.SeekHole);
            if (hole <= data)
            {
                return;
            }

            for (long b = data >> BlockShift; b <= (hole - 1) >> BlockShift; b++)
            {
                if (!image.Present.ContainsKey(b))
                {
                    long start = Math.Max(data, b << BlockShift);
                    long end = Math.Min(hole, (b + 1) << BlockShift);
                    PunchRange(image, start, end - start);
                }
            }

            at = hole;
        }
    }
}
