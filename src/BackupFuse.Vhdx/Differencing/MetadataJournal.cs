using System.Buffers.Binary;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;
using BackupFuse.Vhdx.Log;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The metadata of a differencing file (BAT, sector bitmaps, the patch store's index and pages) is changed only
//   through this journal: 4 KiB sector images (MetadataSectorCache, which it owns) that readers see at once, and that
//   Flush makes durable through the VHDX log (Log/VhdxLog). Its clients (BlockAllocationTable, DifferencingPatchStore,
//   DifferencingVhdxFile) never see the cache, the log or the flush lock; they read and change sector bytes under
//   SyncRoot and call BeginSession / CommitIfLarge / Flush.
// - Flush: take a snapshot of the dirty sectors (under SyncRoot), start the session (header GUIDs) if needed, then
//   VhdxLog.Commit, which flushes the file (so every byte the snapshot points at is stable), writes ONE log entry,
//   flushes, applies it, flushes. When the commit fails the sectors are marked dirty again. A batch larger than one
//   log entry is committed in dependency order, each phase consistent on its own once the earlier ones are on disk:
//     1. sectors no table holds (sector bitmaps, patch pages): nothing points at new ones until phase 3;
//     2. for each dirty sector of a table with early entries (the BAT): the on-disk sector with only those entries
//        (the sector-bitmap entries) taken from the new image, when that changes it;
//     3. the table sectors (BAT, patch index) in full.
//   The tables are the clients registered with AddTable (IJournalTable); the journal knows nothing else about them.
// - Auto-commit: CommitIfLarge flushes once AutoCommitThreshold sectors are dirty, so memory and the size of a
//   batch stay bounded while random writes cost one pwrite each between flushes.
// - Session: the first change (BeginSession, from a write or a patch-store write, or the first commit) renews
//   FileWriteGuid and DataWriteGuid in both headers; the log keeps its LogGuid until Close, which flushes and empties
//   the log (LogGuid = 0).
// - Lifetime: the journal owns the file handle it was given and disposes it last, under the flush lock, so no commit
//   can run on a closed file; Close(crashed: true) skips the flush and the log close (a test hook for crashes).
// - Threading: SyncRoot (the metadata lock) guards the sector images and whatever the clients keep with them; it is
//   held only for lookups and small changes, never across payload I/O or a commit. The flush lock serializes Flush,
//   session starts, Header and Close. Lock order: client locks (block stripe, patch write lock) -> flush lock ->
//   SyncRoot. Tables are registered before the first use and never removed, so the list needs no lock.
// - Not done: a background commit thread, group commit across files, freeing clean sector images (memory grows with
//   what was touched, not with the disk).

/// <summary>The metadata journal of a differencing VHDX: sector images, session, auto-commit and dependency-ordered commit through the VHDX log.</summary>
internal sealed class MetadataJournal
{
    /// <summary>Size of a metadata sector image.</summary>
    public const int SectorSize = MetadataSectorCache.SectorSize;

    /// <summary>Dirty sectors that trigger a commit without an explicit Flush (the default threshold).</summary>
    public const int AutoCommitSectors = 192;

    private readonly IBlockSource _file;
    private readonly VhdxLog _log;
    private readonly object _owner;
    private readonly MetadataSectorCache _cache;
    private readonly object _meta = new();
    private readonly object _flushLock = new();
    private readonly List<IJournalTable> _tables = [];
    private volatile bool _sessionStarted;

    /// <summary>A journal over <paramref name="file"/> (which it owns from now on) and its opened, replayed <paramref name="log"/>.</summary>
    /// <param name="file">The writable differencing file.</param>
    /// <param name="log">The file's log.</param>
    /// <param name="owner">The object named by ObjectDisposedException after Close.</param>
    public MetadataJournal(IBlockSource file, VhdxLog log, object owner)
    {
        _file = file;
        _log = log;
        _owner = owner;
        _cache = new MetadataSectorCache(file);
    }

    /// <summary>The metadata lock: hold it around every sector access and every change of client state kept with the sectors.</summary>
    public object SyncRoot => _meta;

    /// <summary>Dirty sectors that trigger a commit (tests raise it to force batches larger than one log entry).</summary>
    public int AutoCommitThreshold { get; set; } = AutoCommitSectors;

    /// <summary>The file's current header.</summary>
    public VhdxHeader Header
    {
        get
        {
            lock (_flushLock)
            {
                return _log.Header;
            }
        }
    }

    /// <summary>The log (for tests that inject crashes).</summary>
    public VhdxLog Log => _log;

    /// <summary>Whether Close has run: the file is closed.</summary>
    public bool IsClosed { get; private set; }

    /// <summary>Registers a table whose sectors point at other metadata sectors (committed last). Call before the first use.</summary>
    public void AddTable(IJournalTable table) => _tables.Add(table);

    /// <summary>The image of the sector at <paramref name="sectorOffset"/> (4 KiB aligned). Under <see cref="SyncRoot"/>.</summary>
    public byte[] Get(long sectorOffset) => _cache.Get(sectorOffset);

    /// <summary>The image of the sector at <paramref name="sectorOffset"/>, marked dirty for the caller to change. Under <see cref="SyncRoot"/>.</summary>
    public byte[] Modify(long sectorOffset) => _cache.Modify(sectorOffset);

    /// <summary>The little-endian u64 at file offset <paramref name="at"/> (8-byte aligned). Under <see cref="SyncRoot"/>.</summary>
    public ulong ReadUInt64(long at)
    {
        long sector = BlockAlignment.AlignDown(at, SectorSize);
        return BinaryPrimitives.ReadUInt64LittleEndian(_cache.Get(sector).AsSpan((int)(at - sector)));
    }

    /// <summary>Sets the little-endian u64 at file offset <paramref name="at"/> (8-byte aligned). Under <see cref="SyncRoot"/>.</summary>
    public void WriteUInt64(long at, ulong value)
    {
        long sector = BlockAlignment.AlignDown(at, SectorSize);
        BinaryPrimitives.WriteUInt64LittleEndian(_cache.Modify(sector).AsSpan((int)(at - sector)), value);
    }

    /// <summary>Renews the header GUIDs once per session, before the first change.</summary>
    public void BeginSession()
    {
        if (!_sessionStarted)
        {
            lock (_flushLock)
            {
                BeginSessionLocked();
            }
        }
    }

    /// <summary>Commits when at least <see cref="AutoCommitThreshold"/> sectors are dirty (writers call it between pieces).</summary>
    public void CommitIfLarge()
    {
        if (_cache.DirtyCount >= AutoCommitThreshold)
        {
            Flush();
        }
    }

    /// <summary>Makes every completed write durable: data flush, then the pending metadata through the log.</summary>
    public void Flush()
    {
        lock (_flushLock)
        {
            ObjectDisposedException.ThrowIf(IsClosed, _owner);
            List<LogSectorWrite> batch;
            lock (_meta)
            {
                batch = _cache.TakeDirty();
            }

            if (batch.Count == 0)
            {
                _file.Flush();
                return;
            }

            try
            {
                BeginSessionLocked();
                CommitInDependencyOrder(batch);
            }
            catch
            {
                lock (_meta)
                {
                    _cache.MarkDirty(batch.Select(s => s.FileOffset));
                }

                throw;
            }
        }
    }

    /// <summary>
    /// Closes the file: unless <paramref name="crashed"/>, flushes and empties the log first. The file handle is
    /// disposed in every case, last.
    /// </summary>
    public void Close(bool crashed)
    {
        try
        {
            if (!crashed)
            {
                Flush();
                lock (_flushLock)
                {
                    _log.Close();
                }
            }
        }
        finally
        {
            lock (_flushLock)
            {
                IsClosed = true;
                _file.Dispose();
            }
        }
    }

    private void BeginSessionLocked()
    {
        if (!_sessionStarted)
        {
            _log.BeginSession(userVisible: true);
            _sessionStarted = true;
        }
    }

    private void CommitInDependencyOrder(List<LogSectorWrite> batch)
    {
        int max = _log.MaxSectorsPerEntry;
        if (batch.Count <= max)
        {
            _log.Commit(batch);
            return;
        }

        // Phase 1: pages that nothing points at until phase 3 (bitmaps, patch pages). Phase 2: only the early entries
        // (the BAT's sector-bitmap entries) of the dirty table sectors, over the on-disk sector. Phase 3: the full
        // table sectors (BAT, patch index).
        IJournalTable? TableOf(long offset) => _tables.Find(t => t.Holds(offset));
        var phase1 = batch.Where(s => TableOf(s.FileOffset) is null).ToList();
        var phase3 = batch.Where(s => TableOf(s.FileOffset) is not null).ToList();
        var phase2 = new List<LogSectorWrite>();
        foreach (var s in phase3.Where(s => TableOf(s.FileOffset)!.HasEarlyEntries))
        {
            var onDisk = new byte[SectorSize];
            _file.Read(s.FileOffset, onDisk);
            if (TableOf(s.FileOffset)!.CopyEarlyEntries(s.FileOffset, s.Data.Span, onDisk))
            {
                phase2.Add(new LogSectorWrite(s.FileOffset, onDisk));
            }
        }

        foreach (var phase in new[] { phase1, phase2, phase3 })
        {
            for (int i = 0; i < phase.Count; i += max)
            {
                _log.Commit(phase.GetRange(i, Math.Min(max, phase.Count - i)));
            }
        }
    }
}
