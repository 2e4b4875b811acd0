using BackupFuse.Core;
using BackupFuse.Vhdx.Format;
using BackupFuse.Vhdx.Log;
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
//   reachable is published; MetadataJournal.Flush then makes the published metadata durable through the VHDX log
//   (data flush, one log entry, flush, apply, flush; larger batches in dependency order). A crash therefore leaves:
//   every write acknowledged by a completed Flush present (replayed from the log if it was not yet applied); later
//   writes either present or absent, never garbage (an unflushed allocation is unreachable, an unflushed in-place
//   write is plain data, a torn log entry is ignored).
// - Parts (the write path, in reading order): Write / WriteInBlock / Allocate / EnsureSectorBitmap here (payload I/O
//   and the allocation point); BlockAllocationTable (BAT entries and sector-bitmap bits); MetadataJournal (sector
//   images, session, auto-commit, dependency-ordered commit; it owns the file handle and closes it); Log/VhdxLog
//   (the on-disk log and its replay at open). DifferencingPatchStore (the synthesized file's header-area pages) uses
//   the same journal. DifferencingVhdxFormat builds new files and checks opened ones.
// - Batching: BAT/bitmap/patch changes stay in memory (the journal's sector images, reads use them) and go to the
//   log at Flush, or as soon as AutoCommitSectors sectors are dirty, so random writes cost one pwrite each.
// - Threading: the journal's metadata lock (_meta = journal.SyncRoot) guards the sector images and the allocation
//   point and is held only for lookups and small changes, never across payload I/O. Writers serialize per payload
//   block (striped locks), so two writers never allocate the same block and a bitmap change never overtakes its
//   data. Readers take only _meta for the lookup; block offsets never change once allocated, so a stale lookup can
//   only yield the older bytes. Flush and header updates are serialized by the journal's flush lock. Lock order:
//   block stripe or patch lock -> flush lock -> _meta.
// - Session: the first change (write, or commit of patches) renews FileWriteGuid and DataWriteGuid in both headers;
//   the log keeps its LogGuid until Dispose, which flushes and empties the log (LogGuid = 0).
// - Not done: shrinking, trimming (discard), reusing leaked space after a crash, read-only opens of a dirty file.

/// <summary>A differencing VHDX file as a writable block source of its virtual disk (the child's layer only).</summary>
public sealed class DifferencingVhdxFile : BlockSource
{
    /// <summary>Dirty metadata sectors that trigger a commit without an explicit Flush.</summary>
    public const int AutoCommitSectors = MetadataJournal.AutoCommitSectors;

    private const int Stripes = 64;
    private static readonly byte[] ZeroSector = new byte[MetadataJournal.SectorSize];

    private readonly FileBlockSource _file;
    private readonly MetadataJournal _journal;
    private readonly BlockAllocationTable _bat;
    private readonly DifferencingPatchStore _patches;
    private readonly object _meta;
    private readonly object[] _stripes;
    private readonly BatGeometry _geometry;
    private long _allocationPoint;
    private bool _crashed;

    private DifferencingVhdxFile(FileBlockSource file, string path, VhdxLog log, VhdxReader reader, long metadataRegionOffset)
    {
        _file = file;
        Path = path;
        _journal = new MetadataJournal(file, log, this);
        _meta = _journal.SyncRoot;
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
        _geometry = reader.Geometry;
        PayloadBlockCount = reader.PayloadBlockCount;
        _allocationPoint = BlockAlignment.AlignUp(file.Length, DifferencingVhdxFormat.Mebibyte);
        _bat = new BlockAllocationTable(_journal, reader.BatOffset, _geometry, path);
        _patches = new DifferencingPatchStore(_journal, metadataRegionOffset, path);
        _journal.AddTable(_bat);
        _journal.AddTable(_patches);
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
    public VhdxHeader Header => _journal.Header;

    /// <summary>How many log entries were replayed when the file was opened (0 after a clean close).</summary>
    public int ReplayedLogEntries => _journal.Log.ReplayedEntries;

    /// <summary>The byte-exact store for writes to the synthesized file's non-payload area, kept in this file.</summary>
    public ISynthesizedPatchStore Patches => _patches;

    /// <inheritdoc/>
    public override long Length => VirtualSize;

    /// <inheritdoc/>
    public override int BlockSize => LogicalSectorSize;

    /// <inheritdoc/>
    public override bool CanWrite => true;

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

        BackupFuse.Core.Native.PosixCalls.SyncDirectory(directory);
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
            long metadataRegionOffset = DifferencingVhdxFormat.CheckChild(reader, path, expectedParentDataWriteGuid, expectedVirtualSize);
            var child = new DifferencingVhdxFile(file, path, log, reader, metadataRegionOffset);
            child._patches.Load();
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
                entry = _bat.PayloadEntry(block);
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
                            (present, run) = _bat.BitRun(block, sector, lastSector - sector + 1);
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
            var entry = _bat.PayloadEntry(block);
            long blockStart = block * PayloadBlockSize;
            if (entry.PayloadState == PayloadBlockState.PartiallyPresent)
            {
                int sector = (int)((offset - blockStart) / LogicalSectorSize);
                long blockEnd = Math.Min(end, blockStart + PayloadBlockSize);
                var (present, run) = _bat.BitRun(block, sector, (int)((blockEnd - (blockStart + ((long)sector * LogicalSectorSize)) + LogicalSectorSize - 1) / LogicalSectorSize));
                long runEnd = Math.Min(blockEnd, blockStart + ((long)(sector + run) * LogicalSectorSize));
                return new Extent(offset, runEnd - offset, present ? ExtentKind.Data : ExtentKind.Unallocated);
            }

            var kind = KindOf(block, entry);
            long pos = blockStart + PayloadBlockSize;
            for (int scanned = 0; pos < end && scanned < 4096; scanned++)
            {
                var next = _bat.PayloadEntry(pos / PayloadBlockSize);
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
        ObjectDisposedException.ThrowIf(_journal.IsClosed, this);
        if (offset % LogicalSectorSize != 0 || data.Length % LogicalSectorSize != 0)
        {
            throw new ArgumentException($"{Path}: writes must cover whole {LogicalSectorSize}-byte sectors (got {offset}+{data.Length})");
        }

        CheckRange(this, offset, data.Length);
        _journal.BeginSession();
        while (!data.IsEmpty)
        {
            long block = offset / PayloadBlockSize;
            int within = (int)(offset - (block * PayloadBlockSize));
            int n = Math.Min(data.Length, PayloadBlockSize - within);
            lock (_stripes[block % Stripes])
            {
                WriteInBlock(block, within, data[..n]);
            }

            _journal.CommitIfLarge();
            data = data[n..];
            offset += n;
        }
    }

    /// <summary>Makes every completed write durable: data flush, then the pending metadata through the log.</summary>
    public override void Flush() => _journal.Flush();

    /// <summary>Counts what the file holds (scans the BAT and the bitmaps of partial blocks).</summary>
    public DifferencingStatistics GetStatistics()
    {
        (long Full, long Partial, long Bitmaps, long Changed) c;
        lock (_meta)
        {
            c = _bat.Count();
        }

        return new DifferencingStatistics(PayloadBlockSize, c.Full, c.Partial, c.Bitmaps, c.Changed, _file.Length, _patches.PatchedPages, DifferencingVhdxFormat.PatchSlots, _patches.LogicalLength);
    }

    /// <summary>Test hook: drops the object as a crash would (no flush, no log close); the file keeps what was written.</summary>
    internal void SimulateCrash()
    {
        _crashed = true;
        Dispose();
    }

    /// <summary>Dirty sectors that trigger a commit (tests raise it to force batches larger than one log entry).</summary>
    internal int AutoCommitThreshold
    {
        get => _journal.AutoCommitThreshold;
        set => _journal.AutoCommitThreshold = value;
    }

    /// <summary>Test hook: the log, for crash injection.</summary>
    internal VhdxLog Log => _journal.Log;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }

        _journal.Close(_crashed);
    }

    private void WriteInBlock(long block, int within, ReadOnlySpan<byte> data)
    {
        BatEntry entry;
        lock (_meta)
        {
            entry = _bat.PayloadEntry(block);
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
                    _bat.SetBits(block, firstSector, sectors);
                    _bat.PromoteIfComplete(block, (long)entry.FileOffset);
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
                        _bat.SetPayloadEntry(block, PayloadBlockState.FullyPresent, at);
                    }
                }
                else
                {
                    EnsureSectorBitmap(_geometry.ChunkOf(block));
                    long at = Allocate(PayloadBlockSize, coveredToEnd: within + data.Length == PayloadBlockSize);
                    _file.Write(at + within, data);
                    lock (_meta)
                    {
                        _bat.ClearBits(block);
                        _bat.SetBits(block, firstSector, sectors);
                        _bat.SetPayloadEntry(block, PayloadBlockState.PartiallyPresent, at);
                        _bat.PromoteIfComplete(block, at);
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
            var sb = _bat.SectorBitmapEntry(chunk);
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
            _bat.SetSectorBitmapEntry(chunk, at);
        }
    }

    private void ReadData(long block, long fileOffset, Span<byte> destination)
    {
        if (fileOffset < 0 || fileOffset > _file.Length - destination.Length)
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
}
