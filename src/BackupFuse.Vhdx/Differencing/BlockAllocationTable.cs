using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The BAT and the sector bitmaps of a differencing file, read and changed through the MetadataJournal's sector
//   images (so readers see a change at once and Flush makes it durable). All BAT arithmetic comes from BatGeometry.
//   Entry layout (MS-VHDX 2.5): payload block k at index PayloadBatIndex(k); the sector bitmap of chunk c at
//   SectorBitmapBatIndex(c); a PARTIALLY_PRESENT block's bits are SectorBitmapBytesPerBlock bytes of its chunk's
//   1 MiB bitmap block, one bit per logical sector, least significant bit first.
// - Only payload states 0 (NOT_PRESENT), 6 (FULLY_PRESENT) and 7 (PARTIALLY_PRESENT) are written here; the caller
//   reports any other state. A PARTIALLY_PRESENT block whose chunk has no bitmap is corruption (InvalidDataException
//   naming the file).
// - As an IJournalTable: BAT sectors are committed after the pages they point at, and the sector-bitmap entries of
//   a BAT sector before its payload entries (a partial block must never point at a chunk whose bitmap entry is not
//   yet durable).
// - Threading: every method except the IJournalTable ones runs under the journal's SyncRoot, held by the caller
//   (so a caller can combine several lookups and changes atomically). No I/O but through the sector images.
// - Not done: allocation (DifferencingVhdxFile owns the allocation point and the payload I/O), range checks of
//   block numbers (callers check the virtual-disk range first).

/// <summary>The BAT and sector bitmaps of a differencing VHDX, over the metadata journal's sector images.</summary>
internal sealed class BlockAllocationTable : IJournalTable
{
    private const ulong MaxFileOffset = 1UL << 50; // 1 PiB: no VHDX file is bigger (64 TiB of payload + metadata)

    private readonly MetadataJournal _journal;
    private readonly long _batOffset;
    private readonly BatGeometry _geometry;
    private readonly string _path;

    /// <summary>The BAT at <paramref name="batOffset"/> of the file <paramref name="path"/> (for messages).</summary>
    public BlockAllocationTable(MetadataJournal journal, long batOffset, BatGeometry geometry, string path)
    {
        _journal = journal;
        _batOffset = batOffset;
        _geometry = geometry;
        _path = path;
    }

    /// <summary>The geometry of the table.</summary>
    public BatGeometry Geometry => _geometry;

    /// <inheritdoc/>
    public bool HasEarlyEntries => true;

    /// <summary>Length of payload block <paramref name="block"/> (the last one may be shorter).</summary>
    public long BlockLength(long block) => Math.Min(_geometry.BlockSize, _geometry.VirtualDiskSize - (block * _geometry.BlockSize));

    /// <inheritdoc/>
    public bool Holds(long sectorOffset) => sectorOffset >= _batOffset && sectorOffset < _batOffset + _geometry.BatLength;

    /// <inheritdoc/>
    public bool CopyEarlyEntries(long sectorOffset, ReadOnlySpan<byte> image, Span<byte> onDisk)
    {
        bool changed = false;
        long firstIndex = (sectorOffset - _batOffset) / BatEntry.Size;
        for (int i = 0; i < MetadataJournal.SectorSize / BatEntry.Size; i++)
        {
            if (_geometry.IsSectorBitmapBatIndex(firstIndex + i))
            {
                var span = image.Slice(i * BatEntry.Size, BatEntry.Size);
                if (!span.SequenceEqual(onDisk.Slice(i * BatEntry.Size, BatEntry.Size)))
                {
                    span.CopyTo(onDisk[(i * BatEntry.Size)..]);
                    changed = true;
                }
            }
        }

        return changed;
    }

    /// <summary>The BAT entry of payload block <paramref name="block"/>.</summary>
    /// <exception cref="InvalidDataException">Its file offset lies beyond any VHDX file (damaged BAT).</exception>
    public BatEntry PayloadEntry(long block) => Checked(BatEntry.FromRaw(Bat(_geometry.PayloadBatIndex(block))), "payload block", block);

    /// <summary>Points payload block <paramref name="block"/> at <paramref name="fileOffset"/> with <paramref name="state"/>.</summary>
    public void SetPayloadEntry(long block, PayloadBlockState state, long fileOffset) =>
        SetBat(_geometry.PayloadBatIndex(block), BatEntry.Payload(state, (ulong)fileOffset).ToRaw());

    /// <summary>The BAT entry of the sector bitmap of <paramref name="chunk"/>.</summary>
    /// <exception cref="InvalidDataException">Its file offset lies beyond any VHDX file (damaged BAT).</exception>
    public BatEntry SectorBitmapEntry(long chunk) => Checked(BatEntry.FromRaw(Bat(_geometry.SectorBitmapBatIndex(chunk))), "sector bitmap of chunk", chunk);

    /// <summary>Marks the sector bitmap of <paramref name="chunk"/> present at <paramref name="fileOffset"/>.</summary>
    public void SetSectorBitmapEntry(long chunk, long fileOffset) =>
        SetBat(_geometry.SectorBitmapBatIndex(chunk), new BatEntry((byte)SectorBitmapState.Present, (ulong)fileOffset).ToRaw());

    /// <summary>
    /// Whether sector <paramref name="sector"/> of the PARTIALLY_PRESENT block <paramref name="block"/> is present,
    /// and for how many sectors from there (at most <paramref name="maxSectors"/>, at least 1) the answer stays the same.
    /// </summary>
    public (bool Present, int Run) BitRun(long block, int sector, int maxSectors)
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

    /// <summary>Sets the bits of <paramref name="count"/> sectors from <paramref name="firstSector"/> of <paramref name="block"/>.</summary>
    public void SetBits(long block, int firstSector, int count)
    {
        int s = firstSector;
        int end = firstSector + count;
        while (s < end)
        {
            long at = BitmapByte(block, s);
            long sectorStart = BlockAlignment.AlignDown(at, MetadataJournal.SectorSize);
            var image = _journal.Modify(sectorStart);
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

    /// <summary>Clears every bit of <paramref name="block"/> (sectors are only dirtied where a bit was set).</summary>
    public void ClearBits(long block)
    {
        long first = BitmapByte(block, 0);
        for (long at = first; at < first + _geometry.SectorBitmapBytesPerBlock;)
        {
            long sectorStart = BlockAlignment.AlignDown(at, MetadataJournal.SectorSize);
            int from = (int)(at - sectorStart);
            int n = (int)Math.Min(MetadataJournal.SectorSize - from, first + _geometry.SectorBitmapBytesPerBlock - at);
            var image = _journal.Get(sectorStart);
            if (image.AsSpan(from, n).IndexOfAnyExcept((byte)0) >= 0)
            {
                _journal.Modify(sectorStart).AsSpan(from, n).Clear();
            }

            at += n;
        }
    }

    /// <summary>Makes <paramref name="block"/> (at <paramref name="fileOffset"/>) FULLY_PRESENT when all its bits are set.</summary>
    public void PromoteIfComplete(long block, long fileOffset)
    {
        int sectors = (int)(BlockLength(block) / _geometry.LogicalSectorSize);
        var (present, run) = BitRun(block, 0, sectors);
        if (present && run >= sectors)
        {
            SetPayloadEntry(block, PayloadBlockState.FullyPresent, fileOffset);
        }
    }

    /// <summary>
    /// Scans the table: FULLY_PRESENT blocks, PARTIALLY_PRESENT blocks, present sector bitmaps, and the bytes of the
    /// virtual disk this file holds (whole full blocks, set bits of partial ones).
    /// </summary>
    public (long Full, long Partial, long Bitmaps, long Changed) Count()
    {
        long full = 0, partial = 0, bitmaps = 0, changed = 0;
        for (long block = 0; block < _geometry.PayloadBlockCount; block++)
        {
            var entry = PayloadEntry(block);
            long blockLength = BlockLength(block);
            if (entry.PayloadState == PayloadBlockState.FullyPresent)
            {
                full++;
                changed += blockLength;
            }
            else if (entry.PayloadState == PayloadBlockState.PartiallyPresent)
            {
                partial++;
                int sectors = (int)(blockLength / _geometry.LogicalSectorSize);
                for (int s = 0; s < sectors;)
                {
                    var (present, run) = BitRun(block, s, sectors - s);
                    changed += present ? (long)run * _geometry.LogicalSectorSize : 0;
                    s += run;
                }
            }
        }

        for (long chunk = 0; chunk < _geometry.SectorBitmapBlockCount; chunk++)
        {
            bitmaps += SectorBitmapEntry(chunk).SectorBitmapState == SectorBitmapState.Present ? 1 : 0;
        }

        return (full, partial, bitmaps, changed);
    }

    // A BAT offset field holds up to 2^64 - 1 MiB, which as a signed file offset is negative or overflows when a block
    // is added. No VHDX file can be that big (64 TiB of payload plus metadata): such an entry is damage, said once here
    // instead of surfacing as an ArgumentOutOfRangeException from a read or write far below (found by fuzzing).
    private BatEntry Checked(BatEntry entry, string what, long index) =>
        entry.FileOffset <= MaxFileOffset ? entry : throw new InvalidDataException($"{_path}: the BAT entry of {what} {index} points at file offset {entry.FileOffset}, beyond any VHDX file");

    private ulong Bat(long index) => _journal.ReadUInt64(_batOffset + (index * BatEntry.Size));

    private void SetBat(long index, ulong raw) => _journal.WriteUInt64(_batOffset + (index * BatEntry.Size), raw);

    /// <summary>File offset of the bitmap byte holding sector <paramref name="sector"/> of <paramref name="block"/>.</summary>
    private long BitmapByte(long block, int sector)
    {
        var sb = SectorBitmapEntry(_geometry.ChunkOf(block));
        if (sb.SectorBitmapState != SectorBitmapState.Present)
        {
            throw new InvalidDataException($"{_path}: payload block {block} is PARTIALLY_PRESENT but its chunk has no sector bitmap");
        }

        return (long)sb.FileOffset + _geometry.SectorBitmapOffset(block) + (sector / 8);
    }

    private bool Bit(long slice, int sector) => ((BitmapByteAt(slice + (sector / 8)) >> (sector % 8)) & 1) != 0;

    private byte BitmapByteAt(long byteOffset)
    {
        long sectorStart = BlockAlignment.AlignDown(byteOffset, MetadataJournal.SectorSize);
        return _journal.Get(sectorStart)[byteOffset - sectorStart];
    }
}
