using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The synthesized-file patches of a differencing file: up to 768 pages of 4 KiB of the synthesized VHDX's
//   non-payload area (headers, log area, metadata, BAT, bytes past the end), stored in three 1 MiB user metadata
//   items, plus an 8 KiB index item:
//     +0   "BFPATCH1", u32 version (1), u32 slot count (768), u64 logical length (0 = never extended),
//          u32 used slots, zero up to +64
//     +64  u64 per slot: synthesized-file offset of the page + 1 (0 = free). Slots are used in order.
//   Slot i lives at metadata item i / 256, offset (i % 256) * 4096.
// - Every change (page bytes, index entry, header) is a change of metadata sectors of the differencing file and so
//   goes through its sector cache and log like BAT changes: readers see it at once, Flush makes it durable, a crash
//   keeps exactly what the last completed Flush covered. In one log entry a new page and its index entry are
//   atomic; when a batch must be split, pages are committed before the index that points at them.
// - A page written for the first time starts from the synthesized bytes (the caller hands the unpatched pages in),
//   so partial page writes keep the surrounding bytes. A full store raises IOException before anything changes.
// - Talks only to the MetadataJournal (sector images, session, auto-commit, flush), never to DifferencingVhdxFile.
//   As an IJournalTable its index sectors are committed after the pages they point at; it has no early entries.
// - Threading: _writeLock serializes writers (read-modify-write of a page); the slot map and the sector images are
//   guarded by the journal's SyncRoot, which readers take briefly. Lock order: _writeLock -> flush -> SyncRoot.

/// <summary>The synthesized-file patch store kept in a differencing VHDX's user metadata items.</summary>
internal sealed class DifferencingPatchStore : ISynthesizedPatchStore, IJournalTable
{
    private const int PageSize = ISynthesizedPatchStore.PageSize;
    private const int LogicalLengthField = 16;
    private const int UsedField = 24;

    private readonly MetadataJournal _journal;
    private readonly string _path;
    private readonly long _regionOffset;
    private readonly long _indexOffset;
    private readonly SortedList<long, int> _slots = [];
    private readonly object _writeLock = new();
    private int _used;
    private long _logicalLength;

    /// <summary>The store in the metadata region at <paramref name="metadataRegionOffset"/> of the file <paramref name="path"/> (for messages).</summary>
    public DifferencingPatchStore(MetadataJournal journal, long metadataRegionOffset, string path)
    {
        _journal = journal;
        _path = path;
        _regionOffset = metadataRegionOffset;
        _indexOffset = metadataRegionOffset + DifferencingVhdxFormat.PatchIndexOffset;
    }

    /// <summary>Pages in use.</summary>
    public int PatchedPages
    {
        get
        {
            lock (_journal.SyncRoot)
            {
                return _used;
            }
        }
    }

    /// <inheritdoc/>
    public long LogicalLength => Volatile.Read(ref _logicalLength);

    /// <summary>Writes an empty index (signature, version, slot count) into a zeroed 8 KiB item.</summary>
    public static void WriteEmptyIndex(Span<byte> index)
    {
        index.Clear();
        DifferencingVhdxFormat.PatchIndexSignature.CopyTo(index);
        BinaryPrimitives.WriteUInt32LittleEndian(index[8..], DifferencingVhdxFormat.PatchIndexVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(index[12..], DifferencingVhdxFormat.PatchSlots);
    }

    /// <inheritdoc/>
    public bool HasEarlyEntries => false;

    /// <summary>Whether <paramref name="sectorOffset"/> is a sector of the index item.</summary>
    public bool Holds(long sectorOffset) => sectorOffset >= _indexOffset && sectorOffset < _indexOffset + DifferencingVhdxFormat.PatchIndexLength;

    /// <inheritdoc/>
    public bool CopyEarlyEntries(long sectorOffset, ReadOnlySpan<byte> image, Span<byte> onDisk) => false;

    /// <summary>Reads and checks the index.</summary>
    public void Load()
    {
        lock (_journal.SyncRoot)
        {
            var header = _journal.Get(_indexOffset);
            if (!header.AsSpan().StartsWith(DifferencingVhdxFormat.PatchIndexSignature)
                || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)) != DifferencingVhdxFormat.PatchIndexVersion
                || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12)) != DifferencingVhdxFormat.PatchSlots)
            {
                throw Corrupt("the patch index has a wrong signature, version or slot count");
            }

            long length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(LogicalLengthField));
            uint used = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(UsedField));
            if (length < 0 || used > DifferencingVhdxFormat.PatchSlots)
            {
                throw Corrupt($"the patch index says {used} pages and length {length}");
            }

            for (int slot = 0; slot < used; slot++)
            {
                ulong value = IndexEntry(slot);
                long page = (long)value - 1;
                if (value == 0 || page % PageSize != 0 || !_slots.TryAdd(page, slot))
                {
                    throw Corrupt($"patch slot {slot} holds the invalid or repeated page entry {value}");
                }
            }

            _used = (int)used;
            _logicalLength = length;
        }
    }

    /// <inheritdoc/>
    public void GrowLogicalLength(long length)
    {
        lock (_journal.SyncRoot)
        {
            if (length > _logicalLength)
            {
                Volatile.Write(ref _logicalLength, length);
                BinaryPrimitives.WriteInt64LittleEndian(_journal.Modify(_indexOffset).AsSpan(LogicalLengthField), length);
            }
        }
    }

    /// <inheritdoc/>
    public long FindNextPatch(long offset, long end)
    {
        lock (_journal.SyncRoot)
        {
            int i = LowerBound(BlockAlignment.AlignDown(offset, PageSize));
            return i < _slots.Count && _slots.Keys[i] < end ? _slots.Keys[i] : -1;
        }
    }

    /// <inheritdoc/>
    public void Overlay(long offset, Span<byte> buffer)
    {
        long end = offset + buffer.Length;
        lock (_journal.SyncRoot)
        {
            for (int i = LowerBound(BlockAlignment.AlignDown(offset, PageSize)); i < _slots.Count && _slots.Keys[i] < end; i++)
            {
                long page = _slots.Keys[i];
                long from = Math.Max(page, offset);
                long to = Math.Min(page + PageSize, end);
                var image = _journal.Get(SlotOffset(_slots.Values[i]));
                image.AsSpan((int)(from - page), (int)(to - from)).CopyTo(buffer[(int)(from - offset)..]);
            }
        }
    }

    /// <inheritdoc/>
    public void Write(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<byte> unpatchedPages)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        long firstPage = BlockAlignment.AlignDown(offset, PageSize);
        if (unpatchedPages.Length != ISynthesizedPatchStore.UnpatchedPagesLength(offset, data.Length))
        {
            throw new ArgumentException($"{unpatchedPages.Length} unpatched bytes for a write of {data.Length} bytes at {offset}", nameof(unpatchedPages));
        }

        _journal.BeginSession();
        lock (_writeLock)
        {
            // Refuse up front when the pages that are new would not fit, so a write is never half stored.
            lock (_journal.SyncRoot)
            {
                int needed = 0;
                for (long page = BlockAlignment.AlignDown(offset, PageSize); page < offset + data.Length; page += PageSize)
                {
                    needed += _slots.ContainsKey(page) ? 0 : 1;
                }

                if (_used + needed > DifferencingVhdxFormat.PatchSlots)
                {
                    throw new IOException($"{_path}: no room for more header-area changes of the synthesized VHDX ({_used} of {DifferencingVhdxFormat.PatchSlots} pages of 4 KiB in use, {needed} more needed)");
                }
            }

            var fresh = new byte[PageSize];
            while (!data.IsEmpty)
            {
                long page = BlockAlignment.AlignDown(offset, PageSize);
                int within = (int)(offset - page);
                int n = Math.Min(data.Length, PageSize - within);
                bool known;
                lock (_journal.SyncRoot)
                {
                    known = _slots.TryGetValue(page, out int slot);
                    if (known)
                    {
                        data[..n].CopyTo(_journal.Modify(SlotOffset(slot)).AsSpan(within));
                    }
                }

                if (!known)
                {
                    unpatchedPages.Slice((int)(page - firstPage), PageSize).CopyTo(fresh);
                    data[..n].CopyTo(fresh.AsSpan(within));
                    lock (_journal.SyncRoot)
                    {
                        int slot = _used++;
                        fresh.CopyTo(_journal.Modify(SlotOffset(slot)), 0);
                        _slots.Add(page, slot);
                        SetIndexEntry(slot, (ulong)page + 1);
                        BinaryPrimitives.WriteUInt32LittleEndian(_journal.Modify(_indexOffset).AsSpan(UsedField), (uint)_used);
                    }
                }

                data = data[n..];
                offset += n;
                _journal.CommitIfLarge();
            }
        }
    }

    /// <inheritdoc/>
    public void Flush() => _journal.Flush();

    private long SlotOffset(int slot) =>
        _regionOffset + DifferencingVhdxFormat.PatchPageItemOffset(slot / DifferencingVhdxFormat.PagesPerItem) + ((long)(slot % DifferencingVhdxFormat.PagesPerItem) * PageSize);

    private ulong IndexEntry(int slot) => _journal.ReadUInt64(_indexOffset + DifferencingVhdxFormat.PatchIndexHeaderSize + (slot * 8L));

    private void SetIndexEntry(int slot, ulong value) => _journal.WriteUInt64(_indexOffset + DifferencingVhdxFormat.PatchIndexHeaderSize + (slot * 8L), value);

    private int LowerBound(long key)
    {
        var keys = _slots.Keys;
        int lo = 0, hi = keys.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (keys[mid] < key)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private InvalidDataException Corrupt(string problem) => new($"{_path}: {problem}");
}
