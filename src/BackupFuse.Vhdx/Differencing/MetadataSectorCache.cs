using BackupFuse.Core;
using BackupFuse.Vhdx.Log;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - Every metadata structure of a differencing file (BAT, sector bitmaps, the patch store's index and pages) is
//   read and changed through 4 KiB images of its file sectors, loaded on first use and kept: memory grows with what
//   was touched, not with the disk. Changed sectors are marked dirty; TakeDirty hands copies of them to the log.
// - Owned by MetadataJournal, the only user. Not thread-safe: the journal's clients hold its metadata lock
//   (SyncRoot) around every call, and the journal takes it around TakeDirty / MarkDirty.

/// <summary>4 KiB images of metadata sectors of a file, loaded lazily, with a dirty set for the log.</summary>
internal sealed class MetadataSectorCache(IBlockSource file)
{
    /// <summary>Sector size.</summary>
    public const int SectorSize = 4096;

    private readonly Dictionary<long, byte[]> _sectors = [];
    private readonly HashSet<long> _dirty = [];

    /// <summary>Number of dirty sectors.</summary>
    public int DirtyCount => _dirty.Count;

    /// <summary>The image of the sector at <paramref name="offset"/> (4 KiB aligned); bytes past EOF read as zeros.</summary>
    public byte[] Get(long offset)
    {
        if (!_sectors.TryGetValue(offset, out var sector))
        {
            sector = new byte[SectorSize];
            long available = Math.Min(SectorSize, file.Length - offset);
            if (available > 0)
            {
                file.Read(offset, sector.AsSpan(0, (int)available));
            }

            _sectors[offset] = sector;
        }

        return sector;
    }

    /// <summary>The image of the sector at <paramref name="offset"/>, marked dirty for the caller to change.</summary>
    public byte[] Modify(long offset)
    {
        var sector = Get(offset);
        _dirty.Add(offset);
        return sector;
    }

    /// <summary>Copies of the dirty sectors, in file order; the dirty set is emptied.</summary>
    public List<LogSectorWrite> TakeDirty()
    {
        var list = new List<LogSectorWrite>(_dirty.Count);
        foreach (long offset in _dirty.Order())
        {
            list.Add(new LogSectorWrite(offset, (byte[])_sectors[offset].Clone()));
        }

        _dirty.Clear();
        return list;
    }

    /// <summary>Marks sectors dirty again (after a commit failed).</summary>
    public void MarkDirty(IEnumerable<long> offsets)
    {
        foreach (long offset in offsets)
        {
            _dirty.Add(offset);
        }
    }
}
