using System.Globalization;
using System.Text;
using BackupFuse.Core;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - Plugins that read the same opened files as the same disk share one decompressed-block cache instead of one each:
//   four VMs started from four plugins of one backup point decompress every chunk once.
// - The key (ShareKey) is the disk identity (BackupPointDisk.Identity: a hash of everything that shapes the disk, the
//   plugin keys included) AND the identity of every image file actually opened: device, inode, size, mtime and
//   ctime from fstat of the descriptor (BackupImageFile.Status). Size and mtime are the owner's to choose; ctime is
//   not (the kernel sets it), so a file rewritten in place, even with its mtime put back, gets a new key. The disk identity alone is derived from image ids, which are
//   labels anyone can copy into a crafted image: keyed on it, a plugin naming a crafted image could have been served
//   another user's cached blocks, or have served its own blocks to him. Files are not forgeable that way: equal
//   (device, inode) is the same file while the entry keeps it open, so equal keys read equal bytes, on a file system
//   whose inode numbers are unique per device (not so on some FUSE or union file systems; images belong on real
//   ones), and unless the image is rewritten in place, which needs write access to it and moves its ctime.
// - Remote images have no such identity here (an object can be replaced under its URL), so a point with any remote
//   layer is never shared: it gets a cache of its own, as before.
// - Each entry owns the first BackupPointDisk leased for its identity and a CacheFilter over it (drawing from the
//   process budget like any cache); later leases for the key get the same pair and their own point is disposed
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
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

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
        string? key = ShareKey(point);
        if (key == null)
        {
            return new Lease(this, new Entry(null, point, NewCache(point))); // not shareable: a cache of its own
        }

        Entry? entry;
        bool duplicate;
        lock (_lock)
        {
            duplicate = _entries.TryGetValue(key, out entry);
            if (duplicate)
            {
                entry!.Leases++;
            }
            else
            {
                entry = new Entry(key, point, NewCache(point));
                _entries.Add(key, entry);
            }
        }

        var lease = new Lease(this, entry!); // counted above: made before anything else can throw
        if (duplicate)
        {
            try
            {
                point.Dispose(); // only needed to learn the key
            }
            catch (IOException)
            {
                // Closing a read-only file failed: nothing of ours is lost, and the lease must still be returned.
            }
        }

        return lease;
    }

    /// <summary>
    /// What makes two points share a cache: their disk identity and the (device, inode, size, mtime, ctime) of every image file
    /// they opened; null when a layer is remote (not shared).
    /// </summary>
    internal static string? ShareKey(BackupPointDisk point)
    {
        var key = new StringBuilder(point.Identity.ToString("N"));
        foreach (var chain in point.Chains)
        {
            key.Append('|');
            foreach (var layer in chain.Layers)
            {
                if (layer.Status is not { } status)
                {
                    return null;
                }

                var id = status.Stat.Identity;
                key.Append(CultureInfo.InvariantCulture, $"{id.Device}:{id.Inode}:{id.Size}:{id.ModifiedSeconds}.{id.ModifiedNanoseconds}:{status.Stat.ChangedUnixNs};");
            }
        }

        return key.ToString();
    }

    private static CacheFilter NewCache(BackupPointDisk point) =>
        new(point.CreateSource(), CacheBudget.Process, cacheBlockSize: point.Primary.ChunkSize);

    private void Release(Entry entry)
    {
        lock (_lock)
        {
            if (--entry.Leases > 0)
            {
                return;
            }

            if (entry.Key != null)
            {
                _entries.Remove(entry.Key);
            }
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

    internal sealed class Entry(string? key, BackupPointDisk point, CacheFilter cache)
    {
        public string? Key { get; } = key; // null: not shared (never in the dictionary)

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
