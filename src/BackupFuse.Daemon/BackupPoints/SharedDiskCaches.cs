using BackupFuse.Core;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - Plugins that read as the same disk (same BackupPointDisk.Identity: the same images shaped by the same plugin
//   keys, so the same bytes) share one decompressed-block cache instead of one each: four VMs started from four
//   plugins of one backup point decompress (or fetch) every chunk once. The identity is a hash of everything that
//   shapes the disk (BackupPointDisk.Seed), which is also what keeps a plugin's VHDX bytes stable, so equal identities
//   mean equal bytes.
// - Each entry owns the first BackupPointDisk leased for its identity and a CacheFilter over it (drawing from the
//   process budget like any cache); later leases for the identity get the same pair and their own point is disposed
//   at once (it was only needed to learn the identity; each plugin's open already checked that its owner may read the
//   images, and a plugin that may read the images may read their bytes, wherever cached). The last lease to go
//   disposes the cache and the point.
// - A lease is an IBlockSource: the stack above owns it like the cache it replaces (the overlay disposes it), and its
//   Dispose releases the lease once. Reads go straight to the shared CacheFilter, which is thread-safe.
// - Only the daemon shares (PluginProvider, one registry per mount); the CLI's stacks keep a cache of their own.

/// <summary>The daemon's decompressed-block caches, one per distinct disk, shared by every plugin that reads as it.</summary>
public sealed class SharedDiskCaches
{
    private readonly object _lock = new();
    private readonly Dictionary<Guid, Entry> _entries = [];

    /// <summary>Disks with a live cache.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// A lease on the cache of the disk <paramref name="point"/> reads as. Takes ownership of <paramref name="point"/>
    /// on success (it becomes the entry's, or is disposed when an equal disk already has one); on failure the caller
    /// keeps it. Read the disk's metadata from <see cref="Lease.Point"/>.
    /// </summary>
    public Lease Acquire(BackupPointDisk point)
    {
        ArgumentNullException.ThrowIfNull(point);
        Entry? entry;
        bool duplicate;
        lock (_lock)
        {
            duplicate = _entries.TryGetValue(point.Identity, out entry);
            if (duplicate)
            {
                entry!.Leases++;
            }
            else
            {
                entry = new Entry(point, new CacheFilter(point.CreateSource(), CacheBudget.Process, cacheBlockSize: point.Primary.ChunkSize));
                _entries.Add(point.Identity, entry);
            }
        }

        if (duplicate)
        {
            point.Dispose();
        }

        return new Lease(this, entry!);
    }

    private void Release(Entry entry)
    {
        lock (_lock)
        {
            if (--entry.Leases > 0)
            {
                return;
            }

            _entries.Remove(entry.Point.Identity);
        }

        try
        {
            entry.Cache.Dispose();
        }
        finally
        {
            entry.Point.Dispose();
        }
    }

    internal sealed class Entry(BackupPointDisk point, CacheFilter cache)
    {
        public BackupPointDisk Point { get; } = point;

        public CacheFilter Cache { get; } = cache;

        public int Leases { get; set; } = 1;
    }

    /// <summary>One user's hold on a shared cache: the disk, read through the cache; disposing it releases the hold.</summary>
    public sealed class Lease : BlockSource
    {
        private readonly SharedDiskCaches _owner;
        private readonly Entry _entry;
        private int _released;

        internal Lease(SharedDiskCaches owner, Entry entry)
        {
            _owner = owner;
            _entry = entry;
        }

        /// <summary>The backup point the cache reads (shared: do not dispose).</summary>
        public BackupPointDisk Point => _entry.Point;

        /// <summary>The shared cache's counters (all its users together).</summary>
        public CacheStatistics Statistics => _entry.Cache.Statistics;

        /// <inheritdoc/>
        public override long Length => _entry.Cache.Length;

        /// <inheritdoc/>
        public override int BlockSize => _entry.Cache.BlockSize;

        /// <inheritdoc/>
        public override void Read(long offset, Span<byte> buffer)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _released) != 0, this);
            _entry.Cache.Read(offset, buffer);
        }

        /// <inheritdoc/>
        public override Extent GetExtent(long offset, long maxLength)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _released) != 0, this);
            return _entry.Cache.GetExtent(offset, maxLength);
        }

        /// <inheritdoc/>
        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _released, 1) == 0)
            {
                _owner.Release(_entry);
            }

            base.Dispose(disposing);
        }
    }
}
