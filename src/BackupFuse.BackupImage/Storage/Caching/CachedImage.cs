using BackupFuse.Core;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The cache's state of one image (identity = image id + object length): which blocks are present, which are being
//   fetched or punched (InFlight), its sparse data file, its readahead tracker, and how many CachedImageObjects use it.
//   One instance per image per ImageCache, so every object of the same image (plugins, chains, backup points) shares
//   the entries and the in-flight fetches; it stays known (with its entries) after the last object is closed.
// - The data file holds each block at its own offset in the object (a sparse file of the object's length at most).
// - Threading: every field is guarded by the owning ImageCache's lock; the data handle is opened under it and then
//   used for positional I/O from any thread until the cache is disposed.

/// <summary>The cache's state of one image.</summary>
internal sealed class CachedImage(Guid id, long length, int blockShift, int maxReadaheadBlocks)
{
    /// <summary>Image id from the header.</summary>
    public Guid Id { get; } = id;

    /// <summary>Length of the object.</summary>
    public long Length { get; } = length;

    /// <summary>Name of the data file in the cache directory.</summary>
    public string DataName { get; } = DataNameOf(id, length);

    /// <summary>Blocks whose bytes are in the data file and verified by their sector checksums.</summary>
    public Dictionary<long, CacheEntry> Present { get; } = [];

    /// <summary>Blocks being fetched (or punched out): readers wait for these instead of fetching them again.</summary>
    public Dictionary<long, BlockFetch> InFlight { get; } = [];

    /// <summary>Follows sequential streams of reads of this image for readahead.</summary>
    public SequentialStreamTracker Tracker { get; } = new(blockShift, (length + (1L << blockShift) - 1) >> blockShift, maxReadaheadBlocks);

    /// <summary>The data file, once opened.</summary>
    public SafeFileHandle? Data { get; set; }

    /// <summary>Whether bytes were written to the data file since the last flush of the index.</summary>
    public bool DataDirty { get; set; }

    /// <summary>CachedImageObjects open on this image.</summary>
    public int OpenObjects { get; set; }

    /// <summary>"&lt;id&gt;-&lt;length&gt;.data".</summary>
    public static string DataNameOf(Guid id, long length) => $"{id:N}-{length.ToString(System.Globalization.CultureInfo.InvariantCulture)}.data";

    /// <summary>Parses a data file name; false for any other name.</summary>
    public static bool TryParseDataName(string name, out Guid id, out long length)
    {
        id = Guid.Empty;
        length = 0;
        if (!name.EndsWith(".data", StringComparison.Ordinal) || name.Length < 34 || name[32] != '-')
        {
            return false;
        }

        return Guid.TryParseExact(name[..32], "N", out id)
            && long.TryParse(name[33..^5], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length)
            && length > 0;
    }

    /// <inheritdoc/>
    public override string ToString() => DataName;
}

/// <summary>A present block: where it is and the CRC-32C of each of its sectors.</summary>
internal sealed class CacheEntry(CachedImage image, long block, int length, uint[] sectorCrcs)
{
    /// <summary>The image.</summary>
    public CachedImage Image { get; } = image;

    /// <summary>Block number.</summary>
    public long Block { get; } = block;

    /// <summary>Bytes of the block (the last block of an object may be short).</summary>
    public int Length { get; } = length;

    /// <summary>CRC-32C of each <see cref="ImageCacheOptions.SectorSize"/> sector (the last may be short).</summary>
    public uint[] SectorCrcs { get; } = sectorCrcs;

    /// <summary>Place in the cache's LRU list (null once dropped).</summary>
    public LinkedListNode<CacheEntry>? Node { get; set; }

    /// <summary>Bytes it holds on disk (rounded up to 4 KiB).</summary>
    public long DiskBytes => ImageCache.DiskBytes(Length);
}

/// <summary>A fetch (or hole punch) of one or more blocks in progress; waiters wait for <see cref="Done"/>.</summary>
internal sealed class BlockFetch(bool foreground)
{
    /// <summary>Completes when the blocks are present, or the fetch failed (<see cref="Error"/>), or the punch ended.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Whether a reader fetches it (its failure is every waiter's failure); false for readahead, prefetch and punches.</summary>
    public bool Foreground { get; } = foreground;

    /// <summary>Why the fetch failed, set before <see cref="Done"/> completes.</summary>
    public Exception? Error { get; set; }

    /// <summary>Whether bytes for it were reserved within the bound (false: fetched but not stored).</summary>
    public bool Reserved { get; set; }
}
