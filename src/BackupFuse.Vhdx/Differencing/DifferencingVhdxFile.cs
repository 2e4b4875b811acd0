using System.Buffers.Binary;
using BackupFuse.Blocks;
using BackupFuse.Vhdx.Format;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The virtual-disk space of a differencing VHDX (a real, spec-valid file that libvhdi/vhdimount and 7-Zip open with
//   its parent beside it). GetExtent says Unallocated where the parent answers (NOT_PRESENT blocks, clear bitmap
//   bits) and Data where this file does (FULLY_PRESENT blocks, set bits of PARTIALLY_PRESENT blocks). Only the
//   payload states 0, 6 and 7 are used (readers disagree about 1-3 in differencing files); any other state is
//   reported as corruption rather than guessed.
// - Writes are logical-sector granular (DifferencingVhdxOverlay handles unaligned requests). A write to a
//   FULLY_PRESENT block goes in place; to a PARTIALLY_PRESENT block in place plus bitmap bits; to a NOT_PRESENT
//   block: a whole-block write allocates a FULLY_PRESENT block, anything smaller allocates a PARTIALLY_PRESENT one
//   (and the chunk's 1 MiB sector bitmap, zero, on first need) and sets the bits. A block whose bits are all set is
//   promoted to FULLY_PRESENT. Blocks are appended at the allocation point (RoundUp(EOF, 1 MiB) at open), and the
//   file is extended to cover each whole allocation before it can be referenced. Space is never reused or moved.
// - Crash safety (ordering): payload bytes are written BEFORE the in-memory BAT/bitmap change that makes them
//   reachable is published; Flush takes a snapshot of the dirty metadata sectors, then VhdxLog.Commit flushes the
//   file (so every byte the snapshot points at is stable), writes ONE log entry, flushes, applies it, flushes. A crash
//   therefore leaves: every write acknowledged by a completed Flush present (replayed from the log if it was not yet
//   applied); later writes either present or absent, never garbage (an unflushed allocation is unreachable, an
//   unflushed in-place write is plain data, a torn log entry is ignored). A batch larger than one entry is committed
//   in dependency order: bitmap and patch pages, then the sector-bitmap BAT entries alone, then the BAT and index
//   sectors, each of which is consistent on its own once the earlier phases are on disk.
// - Batching: BAT/bitmap/patch changes stay in memory (MetadataSectorCache, reads use it) and go to the log at
//   Flush, or as soon as more than AutoCommitSectors sectors are dirty, so random writes cost one pwrite each.
// - Threading: one metadata lock (_meta) guards the sector cache and the allocation point and is held only for
//   lookups and small changes, never across payload I/O. Writers serialize per payload block (striped locks), so two
//   writers never allocate the same block and a bitmap change never overtakes its data. Readers take only _meta for
//   the lookup; block offsets never change once allocated, so a stale lookup can only yield the older bytes. Flush
//   and header updates are serialized by _flushLock. Lock order: block stripe or patch lock -> _flushLock -> _meta.
// - Session: the first change (write, or commit of patches) renews FileWriteGuid and DataWriteGuid in both headers;
//   the log keeps its LogGuid until Dispose, which flushes and empties the log (LogGuid = 0).
// - Not done: shrinking, trimming (discard), reusing leaked space after a crash, read-only opens of a dirty file.

/// <summary>A differencing VHDX file as a writable block source of its virtual disk (the child's layer only).</summary>
public sealed class DifferencingVhdxFile : BlockSource
{
    /// <summary>Dirty metadata sectors that trigger a commit without an explicit Flush.</summary>
    public const int AutoCommitSectors = 192;

    private const int Stripes = 64;
    private static readonly byte[] ZeroSector = new byte[MetadataSectorCache.SectorSize];

    private readonly FileBlockSource _file;
    private readonly VhdxLog _log;
    private readonly MetadataSectorCache _cache;
    private readonly object _meta = new();
    private readonly object _flushLock = new();
    private readonly object[] _stripes;
    private readonly long _batOffset;
    private readonly BatGeometry _geometry;
    private long _allocationPoint;
    private volatile bool _sessionStarted;
    private bool _crashed;

    private DifferencingVhdxFile(FileBlockSource file, string path, VhdxLog log, VhdxReader reader, long metadataRegionOffset)
    {
        _file = file;
        _log = log;
        Path = path;
        _cache = new MetadataSectorCache(file);
        _stripes = new object[Stripes];
        for (int i = 0; i < Stripes; i++)
        {
            _stripes[i] = new object();
        }

        VirtualSize = reader.VirtualDiskSize;
        PayloadBlockSize = reader.PayloadBlockSize;
        LogicalSectorSize = reader.LogicalSectorSize;
        PhysicalSectorSize = reader.PhysicalSectorSize;
        VirtualDiskId = reader.VirtualDiskId;
        ParentLocator = reader.ParentLocator!;
        _batOffset = reader.BatOffset;
        _geometry = reader.Geometry;
        PayloadBlockCount = reader.PayloadBlockCount;
        _allocationPoint = BlockAlignment.AlignUp(file.Length, DifferencingVhdxFormat.Mebibyte);
        Patches = new DifferencingPatchStore(this, metadataRegionOffset);
    }

    /// <summary>Path of the file.</summary>
    public string Path { get; }

    /// <summary>Virtual disk size (equal to the parent's).</summary>
    public long VirtualSize { get; }

    /// <summary>Payload block size.</summary>
    public int PayloadBlockSize { get; }

    /// <summary>Number of payload blocks.</summary>
    public long PayloadBlockCount { get; }

    /// <summary>Logical sector size: the write granularity.</summary>
    public int LogicalSectorSize { get; }

    /// <summary>Physical sector size item.</summary>
    public int PhysicalSectorSize { get; }

    /// <summary>Virtual Disk ID item (copied from the parent).</summary>
    public Guid VirtualDiskId { get; }

    /// <summary>The parent locator item.</summary>
    public ParentLocator ParentLocator { get; }

    /// <summary>The parent's DataWriteGuid the locator names.</summary>
    public Guid ParentLinkage => Guid.Parse(ParentLocator[ParentLocator.ParentLinkageKey]!);

    /// <summary>This file's current header (its DataWriteGuid is what libvhdi calls the identifier).</summary>
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

    /// <summary>How many log entries were replayed when the file was opened (0 after a clean close).</summary>
    public int ReplayedLogEntries => _log.ReplayedEntries;

    /// <summary>The byte-exact store for writes to the synthesized file's non-payload area, kept in this file.</summary>
    public ISynthesizedPatchStore Patches { get; }

    /// <inheritdoc/>
    public override long Length => VirtualSize;

    /// <inheritdoc/>
    public override int BlockSize => LogicalSectorSize;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    internal MetadataSectorCache Cache => _cache;

    internal object MetaLock => _meta;

    /// <summary>
    /// Creates <paramref name="path"/> (which must not exist) as an empty child of <paramref name="parent"/>, atomically
    /// (temporary file, fsync, rename, directory fsync), and opens it.
    /// </summary>
    public static DifferencingVhdxFile Create(string path, DifferencingParent parent, int blockSize = 2 * 1024 * 1024)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = System.IO.Path.GetFullPath(path);
        string directory = System.IO.Path.GetDirectoryName(full)!;
        if (File.Exists(full))
        {
            throw new IOException($"{full}: a differencing file already exists here; refusing to replace it");
        }

        string temp = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                Format(handle, parent, blockSize);
            }

            File.Move(temp, full, overwrite: false);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }

        DirectorySync.Flush(directory);
        return Open(full, parent.DataWriteGuid, parent.VirtualSize);
    }

    /// <summary>
    /// Writes an empty child of <paramref name="parent"/> into the empty file open (read-write) as
    /// <paramref name="handle"/> and flushes it to disk. For callers that create the file themselves (e.g. with
    /// O_EXCL|O_NOFOLLOW under a temporary name) and make it visible by rename afterwards; then
    /// <see cref="Open(SafeFileHandle, string, Guid, long?)"/> on the same handle.
    /// </summary>
    public static void Format(SafeFileHandle handle, DifferencingParent parent, int blockSize = 2 * 1024 * 1024)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var (section, metadata, fileLength) = DifferencingVhdxFormat.Build(parent, blockSize, Guid.NewGuid(), Guid.NewGuid());
        RandomAccess.SetLength(handle, fileLength);
        RandomAccess.Write(handle, section, 0);
        RandomAccess.Write(handle, metadata, DifferencingVhdxFormat.MetadataOffset);
        RandomAccess.FlushToDisk(handle);
    }

    /// <summary>
    /// Opens an existing child for reading and writing: replays its log, then checks that it is a differencing file
    /// whose parent_linkage is <paramref name="expectedParentDataWriteGuid"/> (and whose size is
    /// <paramref name="expectedVirtualSize"/> when given) and that it carries the patch store. InvalidDataException
    /// naming the file for every inconsistency.
    /// </summary>
    public static DifferencingVhdxFile Open(string path, Guid expectedParentDataWriteGuid, long? expectedVirtualSize = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Open(new FileBlockSource(path, writable: true), path, expectedParentDataWriteGuid, expectedVirtualSize);
    }

    /// <summary>
    /// As <see cref="Open(string, Guid, long?)"/>, over a file the caller has opened read-write (e.g. with O_NOFOLLOW
    /// from a directory descriptor, after checking its owner). Takes ownership of <paramref name="handle"/>;
    /// <paramref name="path"/> names the file in messages.
    /// </summary>
    public static DifferencingVhdxFile Open(SafeFileHandle handle, string path, Guid expectedParentDataWriteGuid, long? expectedVirtualSize = null)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentException.ThrowIfNullOrEmpty(path);
        FileBlockSource file;
        try
        {
            file = new FileBlockSource(handle, writable: true, ownsHandle: true);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        return Open(file, path, expectedParentDataWriteGuid, expectedVirtualSize);
    }

    private static DifferencingVhdxFile Open(FileBlockSource file, string path, Guid expectedParentDataWriteGuid, long? expectedVirtualSize)
    {
        try
        {
            var log = VhdxLog.Open(file, path);
            using var reader = VhdxReader.Open(file, path, ownsFile: false);
            InvalidDataException Corrupt(string problem) => new($"{path}: {problem}");
            if (!reader.FileParameters.HasParent || reader.ParentLocator is null)
            {
                throw Corrupt("not a differencing VHDX (HasParent is not set)");
            }

            var locator = reader.ParentLocator;
            if (locator.LocatorType != VhdxGuids.VhdxParentLocatorType)
            {
                throw Corrupt($"unknown parent locator type {locator.LocatorType}");
            }

            if (!Guid.TryParse(locator[ParentLocator.ParentLinkageKey], out var linkage))
            {
                throw Corrupt("the parent locator has no parseable parent_linkage");
            }

            if (linkage != expectedParentDataWriteGuid)
            {
                throw Corrupt($"it belongs to parent {linkage:B}, not to {expectedParentDataWriteGuid:B}");
            }

            if (expectedVirtualSize is { } size && size != reader.VirtualDiskSize)
            {
                throw Corrupt($"its virtual size {reader.VirtualDiskSize} differs from the parent's {size}");
            }

            var region = reader.RegionTable.Find(VhdxGuids.MetadataRegion)!.Value;
            CheckUserItem(reader, region, DifferencingVhdxFormat.PatchIndexItem, DifferencingVhdxFormat.PatchIndexOffset, DifferencingVhdxFormat.PatchIndexLength, Corrupt);
            for (int i = 0; i < DifferencingVhdxFormat.PatchPageItems; i++)
            {
                CheckUserItem(reader, region, DifferencingVhdxFormat.PatchPageItemIds[i], DifferencingVhdxFormat.PatchPageItemOffset(i), DifferencingVhdxFormat.PatchPageItemLength, Corrupt);
            }

            var child = new DifferencingVhdxFile(file, path, log, reader, (long)region.FileOffset);
            ((DifferencingPatchStore)child.Patches).Load();
            return child;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            long block = offset / PayloadBlockSize;
            int within = (int)(offset - (block * PayloadBlockSize));
            int n = Math.Min(buffer.Length, PayloadBlockSize - within);
            var piece = buffer[..n];
            BatEntry entry;
            lock (_meta)
            {
                entry = PayloadEntry(block);
            }

            switch (entry.PayloadState)
            {
                case PayloadBlockState.FullyPresent:
                    ReadData(block, (long)entry.FileOffset + within, piece);
                    break;
                case PayloadBlockState.NotPresent:
                    piece.Clear();
                    break;
                case PayloadBlockState.PartiallyPresent:
                    int done = 0;
                    while (done < n)
                    {
                        // Requests need not be sector aligned: work in bytes, look the bitmap up by sector.
                        int position = within + done;
                        int sector = position / LogicalSectorSize;
                        int lastSector = (within + n - 1) / LogicalSectorSize;
                        int run;
                        bool present;
                        lock (_meta)
                        {
                            (present, run) = BitRun(block, sector, lastSector - sector + 1);
                        }

                        int runEnd = Math.Min(within + n, (sector + run) * LogicalSectorSize);
                        var part = piece.Slice(done, runEnd - position);
                        if (present)
                        {
                            ReadData(block, (long)entry.FileOffset + within + done, part);
                        }
                        else
                        {
                            part.Clear();
                        }

                        done += part.Length;
                    }

                    break;
                default:
                    throw UnusedState(block, entry);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        long end = Math.Min(Length, offset + Math.Min(maxLength, Length - offset));
        long block = offset / PayloadBlockSize;
        lock (_meta)
        {
            var entry = PayloadEntry(block);
            long blockStart = block * PayloadBlockSize;
            if (entry.PayloadState == PayloadBlockState.PartiallyPresent)
            {
                int sector = (int)((offset - blockStart) / LogicalSectorSize);
                long blockEnd = Math.Min(end, blockStart + PayloadBlockSize);
                var (present, run) = BitRun(block, sector, (int)((blockEnd - (blockStart + ((long)sector * LogicalSectorSize)) + LogicalSectorSize - 1) / LogicalSectorSize));
                long runEnd = Math.Min(blockEnd, blockStart + ((long)(sector + run) * LogicalSectorSize));
                return new Extent(offset, runEnd - offset, present ? ExtentKind.Data : ExtentKind.Unallocated);
            }

            var kind = KindOf(block, entry);
            long pos = blockStart + PayloadBlockSize;
            for (int scanned = 0; pos < end && scanned < 4096; scanned++)
            {
                var next = PayloadEntry(pos / PayloadBlockSize);
                if (next.PayloadState == PayloadBlockState.PartiallyPresent || KindOf(pos / PayloadBlockSize, next) != kind)
                {
                    break;
                }

                pos += PayloadBlockSize;
            }

            return new Extent(offset, Math.Min(pos, end) - offset, kind);
        }
    }

    /// <summary>Writes whole logical sectors (<paramref name="offset"/> and the length are multiples of <see cref="LogicalSectorSize"/>).</summary>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        if (offset % LogicalSectorSize != 0 || data.Length % LogicalSectorSize != 0)
        {
            throw new ArgumentException($"{Path}: writes must cover whole {LogicalSectorSize}-byte sectors (got {offset}+{data.Length})");
        }

        CheckRange(this, offset, data.Length);
        BeginSession();
        while (!data.IsEmpty)
        {
            long block = offset / PayloadBlockSize;
            int within = (int)(offset - (block * PayloadBlockSize));
            int n = Math.Min(data.Length, PayloadBlockSize - within);
            lock (_stripes[block % Stripes])
            {
                WriteInBlock(block, within, data[..n]);
            }

            if (_cache.DirtyCount >= AutoCommitThreshold)
            {
                Flush();
            }

            data = data[n..];
            offset += n;
        }
    }

    /// <summary>Makes every completed write durable: data flush, then the pending metadata through the log.</summary>
    public override void Flush()
    {
        lock (_flushLock)
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
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

    /// <summary>Counts what the file holds (scans the BAT and the bitmaps of partial blocks).</summary>
    public DifferencingStatistics GetStatistics()
    {
        long full = 0, partial = 0, bitmaps = 0, changed = 0;
        lock (_meta)
        {
            for (long block = 0; block < PayloadBlockCount; block++)
            {
                var entry = PayloadEntry(block);
                long blockLength = Math.Min(PayloadBlockSize, VirtualSize - (block * PayloadBlockSize));
                if (entry.PayloadState == PayloadBlockState.FullyPresent)
                {
                    full++;
                    changed += blockLength;
                }
                else if (entry.PayloadState == PayloadBlockState.PartiallyPresent)
                {
                    partial++;
                    int sectors = (int)(blockLength / LogicalSectorSize);
                    for (int s = 0; s < sectors;)
                    {
                        var (present, run) = BitRun(block, s, sectors - s);
                        changed += present ? (long)run * LogicalSectorSize : 0;
                        s += run;
                    }
                }
            }

            for (long chunk = 0; chunk < _geometry.SectorBitmapBlockCount; chunk++)
            {
                bitmaps += BatEntry.FromRaw(Bat(_geometry.SectorBitmapBatIndex(chunk))).SectorBitmapState == SectorBitmapState.Present ? 1 : 0;
            }
        }

        var store = (DifferencingPatchStore)Patches;
        return new DifferencingStatistics(PayloadBlockSize, full, partial, bitmaps, changed, _file.Length, store.PatchedPages, DifferencingVhdxFormat.PatchSlots, store.LogicalLength);
    }

    /// <summary>Test hook: drops the object as a crash would (no flush, no log close); the file keeps what was written.</summary>
    internal void SimulateCrash()
    {
        _crashed = true;
        Dispose();
    }

    /// <summary>Dirty sectors that trigger a commit (tests raise it to force batches larger than one log entry).</summary>
    internal int AutoCommitThreshold { get; set; } = AutoCommitSectors;

    /// <summary>Test hook: the log, for crash injection.</summary>
    internal VhdxLog Log => _log;

    /// <summary>Renews the header GUIDs once per session, before the first change.</summary>
    internal void BeginSession()
    {
        if (!_sessionStarted)
        {
            lock (_flushLock)
            {
                BeginSessionLocked();
            }
        }
    }

    /// <summary>Commits when enough metadata is dirty (called by the patch store between pages).</summary>
    internal void CommitIfLarge()
    {
        if (_cache.DirtyCount >= AutoCommitThreshold)
        {
            Flush();
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }

        try
        {
            if (!_crashed)
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

    private bool IsClosed { get; set; }

    private static void CheckUserItem(VhdxReader reader, RegionTableEntry region, Guid id, int offset, int length, Func<string, InvalidDataException> corrupt)
    {
        var item = reader.MetadataTable.Entries.FirstOrDefault(e => e.IsUser && e.ItemId == id);
        if (item.ItemId != id || item.Offset != offset || item.Length != length || offset + length > region.Length)
        {
            throw corrupt($"the BackupFuse patch item {id} is missing or misplaced (not a BackupFuse differencing file?)");
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

    private void WriteInBlock(long block, int within, ReadOnlySpan<byte> data)
    {
        BatEntry entry;
        lock (_meta)
        {
            entry = PayloadEntry(block);
        }

        int firstSector = within / LogicalSectorSize;
        int sectors = data.Length / LogicalSectorSize;
        switch (entry.PayloadState)
        {
            case PayloadBlockState.FullyPresent:
                _file.Write((long)entry.FileOffset + within, data);
                break;
            case PayloadBlockState.PartiallyPresent:
                _file.Write((long)entry.FileOffset + within, data);
                lock (_meta)
                {
                    SetBits(block, firstSector, sectors);
                    PromoteIfComplete(block, (long)entry.FileOffset);
                }

                break;
            case PayloadBlockState.NotPresent:
                long blockLength = Math.Min(PayloadBlockSize, VirtualSize - (block * PayloadBlockSize));
                if (within == 0 && data.Length == blockLength)
                {
                    long at = Allocate(PayloadBlockSize, coveredToEnd: data.Length == PayloadBlockSize);
                    _file.Write(at, data);
                    lock (_meta)
                    {
                        SetPayloadEntry(block, PayloadBlockState.FullyPresent, at);
                    }
                }
                else
                {
                    EnsureSectorBitmap(_geometry.ChunkOf(block));
                    long at = Allocate(PayloadBlockSize, coveredToEnd: within + data.Length == PayloadBlockSize);
                    _file.Write(at + within, data);
                    lock (_meta)
                    {
                        ClearBits(block);
                        SetBits(block, firstSector, sectors);
                        SetPayloadEntry(block, PayloadBlockState.PartiallyPresent, at);
                        PromoteIfComplete(block, at);
                    }
                }

                break;
            default:
                throw UnusedState(block, entry);
        }
    }

    /// <summary>Reserves <paramref name="length"/> bytes at the allocation point and extends the file over them.</summary>
    private long Allocate(long length, bool coveredToEnd)
    {
        long at;
        lock (_meta)
        {
            at = _allocationPoint;
            _allocationPoint += length;
        }

        if (!coveredToEnd)
        {
            _file.Write(at + length - ZeroSector.Length, ZeroSector);
        }

        return at;
    }

    private void EnsureSectorBitmap(long chunk)
    {
        lock (_meta)
        {
            long index = _geometry.SectorBitmapBatIndex(chunk);
            var sb = BatEntry.FromRaw(Bat(index));
            if (sb.SectorBitmapState == SectorBitmapState.Present)
            {
                return;
            }

            if (sb.State != 0)
            {
                throw new InvalidDataException($"{Path}: sector bitmap entry of chunk {chunk} has the reserved state {sb.State}");
            }

            // Rare (once per 4 GiB chunk): allocated and extended under the lock, so nobody sees the entry before the
            // zero-filled bitmap block exists in the file.
            long at = _allocationPoint;
            _allocationPoint += DifferencingVhdxFormat.Mebibyte;
            _file.Write(at + DifferencingVhdxFormat.Mebibyte - ZeroSector.Length, ZeroSector);
            SetBat(index, new BatEntry((byte)SectorBitmapState.Present, (ulong)at).ToRaw());
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

        // Phase 1: pages that nothing points at until phase 3 (bitmaps, patch pages). Phase 2: only the sector-bitmap
        // entries of the dirty BAT sectors, over the on-disk sector. Phase 3: the full BAT and patch index sectors.
        long batEnd = _batOffset + _geometry.BatLength;
        bool IsTable(long offset) => (offset >= _batOffset && offset < batEnd) || ((DifferencingPatchStore)Patches).IsIndexSector(offset);
        var phase1 = batch.Where(s => !IsTable(s.FileOffset)).ToList();
        var phase3 = batch.Where(s => IsTable(s.FileOffset)).ToList();
        var phase2 = new List<LogSectorWrite>();
        foreach (var s in phase3.Where(s => s.FileOffset >= _batOffset && s.FileOffset < batEnd))
        {
            var onDisk = new byte[MetadataSectorCache.SectorSize];
            _file.Read(s.FileOffset, onDisk);
            bool changed = false;
            long firstIndex = (s.FileOffset - _batOffset) / BatEntry.Size;
            for (int i = 0; i < MetadataSectorCache.SectorSize / BatEntry.Size; i++)
            {
                if (_geometry.IsSectorBitmapBatIndex(firstIndex + i))
                {
                    var span = s.Data.Span.Slice(i * BatEntry.Size, BatEntry.Size);
                    if (!span.SequenceEqual(onDisk.AsSpan(i * BatEntry.Size, BatEntry.Size)))
                    {
                        span.CopyTo(onDisk.AsSpan(i * BatEntry.Size));
                        changed = true;
                    }
                }
            }

            if (changed)
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

    private void ReadData(long block, long fileOffset, Span<byte> destination)
    {
        if (fileOffset + destination.Length > _file.Length)
        {
            throw new InvalidDataException($"{Path}: payload block {block} at {fileOffset} lies outside the file ({_file.Length} bytes)");
        }

        _file.Read(fileOffset, destination);
    }

    private ExtentKind KindOf(long block, BatEntry entry) => entry.PayloadState switch
    {
        PayloadBlockState.NotPresent => ExtentKind.Unallocated,
        PayloadBlockState.FullyPresent or PayloadBlockState.PartiallyPresent => ExtentKind.Data,
        _ => throw UnusedState(block, entry),
    };

    private InvalidDataException UnusedState(long block, BatEntry entry) =>
        new($"{Path}: payload block {block} has BAT state {entry.State}, which a differencing file written by BackupFuse never uses");

    // Everything below runs under _meta.
    private BatEntry PayloadEntry(long block) => BatEntry.FromRaw(Bat(_geometry.PayloadBatIndex(block)));

    private ulong Bat(long index)
    {
        long at = _batOffset + (index * BatEntry.Size);
        long sector = BlockAlignment.AlignDown(at, MetadataSectorCache.SectorSize);
        return BinaryPrimitives.ReadUInt64LittleEndian(_cache.Get(sector).AsSpan((int)(at - sector)));
    }

    private void SetBat(long index, ulong raw)
    {
        long at = _batOffset + (index * BatEntry.Size);
        long sector = BlockAlignment.AlignDown(at, MetadataSectorCache.SectorSize);
        BinaryPrimitives.WriteUInt64LittleEndian(_cache.Modify(sector).AsSpan((int)(at - sector)), raw);
    }

    private void SetPayloadEntry(long block, PayloadBlockState state, long fileOffset) =>
        SetBat(_geometry.PayloadBatIndex(block), BatEntry.Payload(state, (ulong)fileOffset).ToRaw());

    /// <summary>File offset of the bitmap byte holding sector <paramref name="sector"/> of <paramref name="block"/>.</summary>
    private long BitmapByte(long block, int sector)
    {
        var sb = BatEntry.FromRaw(Bat(_geometry.SectorBitmapBatIndex(_geometry.ChunkOf(block))));
        if (sb.SectorBitmapState != SectorBitmapState.Present)
        {
            throw new InvalidDataException($"{Path}: payload block {block} is PARTIALLY_PRESENT but its chunk has no sector bitmap");
        }

        return (long)sb.FileOffset + _geometry.SectorBitmapOffset(block) + (sector / 8);
    }

    private (bool Present, int Run) BitRun(long block, int sector, int maxSectors)
    {
        maxSectors = Math.Max(1, maxSectors);
        long slice = BitmapByte(block, 0);
        bool present = Bit(slice, sector);
        byte whole = present ? (byte)0xFF : (byte)0;
        int run = 1;
        int s = sector + 1;
        while (run < maxSectors)
        {
            if (s % 8 == 0 && maxSectors - run >= 8 && BitmapByteAt(slice + (s / 8)) == whole)
            {
                run += 8;
                s += 8;
                continue;
            }

            if (Bit(slice, s) != present)
            {
                break;
            }

            run++;
            s++;
        }

        return (present, run);
    }

    private bool Bit(long slice, int sector) => ((BitmapByteAt(slice + (sector / 8)) >> (sector % 8)) & 1) != 0;

    private byte BitmapByteAt(long byteOffset)
    {
        long sectorStart = BlockAlignment.AlignDown(byteOffset, MetadataSectorCache.SectorSize);
        return _cache.Get(sectorStart)[byteOffset - sectorStart];
    }

    private void SetBits(long block, int firstSector, int count)
    {
        int s = firstSector;
        int end = firstSector + count;
        while (s < end)
        {
            long at = BitmapByte(block, s);
            long sectorStart = BlockAlignment.AlignDown(at, MetadataSectorCache.SectorSize);
            var image = _cache.Modify(sectorStart);
            if (s % 8 == 0 && end - s >= 8)
            {
                image[at - sectorStart] = 0xFF;
                s += 8;
            }
            else
            {
                image[at - sectorStart] |= (byte)(1 << (s % 8));
                s++;
            }
        }
    }

    private void ClearBits(long block)
    {
        long first = BitmapByte(block, 0);
        for (long at = first; at < first + _geometry.SectorBitmapBytesPerBlock;)
        {
            long sectorStart = BlockAlignment.AlignDown(at, MetadataSectorCache.SectorSize);
            int from = (int)(at - sectorStart);
            int n = (int)Math.Min(MetadataSectorCache.SectorSize - from, first + _geometry.SectorBitmapBytesPerBlock - at);
            var image = _cache.Get(sectorStart);
            if (image.AsSpan(from, n).IndexOfAnyExcept((byte)0) >= 0)
            {
                _cache.Modify(sectorStart).AsSpan(from, n).Clear();
            }

            at += n;
        }
    }

    private void PromoteIfComplete(long block, long fileOffset)
    {
        long blockLength = Math.Min(PayloadBlockSize, VirtualSize - (block * PayloadBlockSize));
        int sectors = (int)(blockLength / LogicalSectorSize);
        var (present, run) = BitRun(block, 0, sectors);
        if (present && run >= sectors)
        {
            SetPayloadEntry(block, PayloadBlockState.FullyPresent, fileOffset);
        }
    }
}
