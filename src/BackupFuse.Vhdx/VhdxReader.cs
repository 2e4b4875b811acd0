using System.Buffers;
using System.Buffers.Binary;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx;

// Design notes:
// - A read-only VHDX parser presented as the virtual disk it holds (Length = VirtualDiskSize). Open validates
//   once: signature, current header (valid slot with the larger sequence number; equal numbers only when the
//   slots are byte-identical, as QEMU and 7-Zip allow), region table 1 (falling back to table 2 when table 1 is
//   damaged), required regions and metadata items, item lengths, block and sector sizes, BAT region size.
// - A pending log (LogGuid != 0) is refused with NotSupportedException: replay is not implemented yet.
// - BAT entries are read from the file on demand (8 bytes per lookup), so nothing proportional to the disk is
//   held. Payload states 1/2/3/5 read as zeros; 0 reads as zeros and reports Unallocated in a differencing file
//   (HasParent: "ask the parent"), Zero otherwise; 6 reads the file; 7 (sector bitmaps) is not supported yet.
// - Corruption raises InvalidDataException naming the file; a FULLY_PRESENT block past EOF is corruption.
// - Thread-safe: immutable after Open; the file source must be thread-safe.

/// <summary>A read-only view of the virtual disk inside a VHDX file (fixed, dynamic, or differencing without bitmaps).</summary>
public sealed class VhdxReader : BlockSource
{
    private const int ExtentScanLimit = 4096;
    private readonly IBlockSource _file;
    private readonly bool _ownsFile;

    private VhdxReader(IBlockSource file, string name, bool ownsFile)
    {
        _file = file;
        Name = name;
        _ownsFile = ownsFile;

        Span<byte> signature = stackalloc byte[8];
        ReadFile(0, signature, "file type identifier");
        if (!signature.SequenceEqual(FileTypeIdentifier.Signature))
        {
            throw Corrupt("missing the \"vhdxfile\" signature");
        }

        (Header, HeaderSlot) = ReadCurrentHeader();
        if (Header.LogGuid != Guid.Empty)
        {
            throw new NotSupportedException($"{Name}: the VHDX log holds entries that need replay (LogGuid {Header.LogGuid}); log replay is not supported yet");
        }

        RegionTable = ReadRegionTable();
        var bat = RequiredRegion(VhdxGuids.BatRegion, "BAT");
        var metadata = RequiredRegion(VhdxGuids.MetadataRegion, "metadata");
        foreach (var r in RegionTable.Entries)
        {
            if (r.Required && r.Guid != VhdxGuids.BatRegion && r.Guid != VhdxGuids.MetadataRegion)
            {
                throw new NotSupportedException($"{Name}: unknown required region {r.Guid}");
            }
        }

        BatOffset = (long)bat.FileOffset;
        BatLength = bat.Length;
        ReadMetadata(metadata);

        Geometry = new BatGeometry(VirtualDiskSize, PayloadBlockSize, LogicalSectorSize, FileParameters.HasParent);
        long neededEntries = Geometry.TotalBatEntries;
        if (neededEntries * BatEntry.Size > BatLength)
        {
            throw Corrupt($"BAT region of {BatLength} bytes is smaller than the {neededEntries} entries the disk needs");
        }
    }

    /// <summary>Opens and validates a VHDX file. The reader owns the file when <paramref name="ownsFile"/>.</summary>
    public static VhdxReader Open(IBlockSource file, string? name = null, bool ownsFile = false)
    {
        ArgumentNullException.ThrowIfNull(file);
        return new VhdxReader(file, name ?? (file as FileBlockSource)?.Path ?? "VHDX", ownsFile);
    }

    /// <summary>The file's name, for messages.</summary>
    public string Name { get; }

    /// <summary>The current header.</summary>
    public VhdxHeader Header { get; }

    /// <summary>Which slot (1 or 2) holds the current header.</summary>
    public int HeaderSlot { get; }

    /// <summary>The region table in use.</summary>
    public RegionTable RegionTable { get; }

    /// <summary>The metadata table.</summary>
    public MetadataTable MetadataTable { get; private set; } = MetadataTable.Empty;

    /// <summary>The File Parameters item.</summary>
    public FileParameters FileParameters { get; private set; }

    /// <summary>Virtual disk size in bytes.</summary>
    public long VirtualDiskSize { get; private set; }

    /// <summary>The Virtual Disk ID item.</summary>
    public Guid VirtualDiskId { get; private set; }

    /// <summary>Logical sector size.</summary>
    public int LogicalSectorSize { get; private set; }

    /// <summary>Physical sector size.</summary>
    public int PhysicalSectorSize { get; private set; }

    /// <summary>The parent locator of a differencing file, else null.</summary>
    public ParentLocator? ParentLocator { get; private set; }

    /// <summary>Payload block size (File Parameters BlockSize; <see cref="BlockSize"/> is the I/O alignment).</summary>
    public int PayloadBlockSize => (int)FileParameters.BlockSize;

    /// <summary>File offset of the BAT region.</summary>
    public long BatOffset { get; }

    /// <summary>Length of the BAT region.</summary>
    public long BatLength { get; }

    /// <summary>The BAT arithmetic of this file (sizes and HasParent from its metadata).</summary>
    public BatGeometry Geometry { get; }

    /// <summary>Payload blocks per chunk.</summary>
    public long ChunkRatio => Geometry.ChunkRatio;

    /// <summary>Number of payload blocks.</summary>
    public long PayloadBlockCount => Geometry.PayloadBlockCount;

    /// <inheritdoc/>
    public override long Length => VirtualDiskSize;

    /// <inheritdoc/>
    public override int BlockSize => LogicalSectorSize;

    /// <summary>The raw-decoded BAT entry at <paramref name="index"/>.</summary>
    public BatEntry GetBatEntry(long index)
    {
        if (index < 0 || (index + 1) * BatEntry.Size > BatLength)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, "outside the BAT region");
        }

        Span<byte> raw = stackalloc byte[BatEntry.Size];
        ReadFile(BatOffset + (index * BatEntry.Size), raw, "BAT");
        return BatEntry.FromRaw(BinaryPrimitives.ReadUInt64LittleEndian(raw));
    }

    /// <summary>The BAT entry of payload block <paramref name="block"/> (index k + floor(k / ChunkRatio)).</summary>
    public BatEntry GetPayloadBlockEntry(long block) => GetBatEntry(Geometry.PayloadBatIndex(block));

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        long blockSize = FileParameters.BlockSize;
        while (!buffer.IsEmpty)
        {
            long block = offset / blockSize;
            long within = offset - (block * blockSize);
            int n = (int)Math.Min(buffer.Length, blockSize - within);
            var piece = buffer[..n];
            var entry = GetPayloadBlockEntry(block);
            switch (entry.PayloadState)
            {
                case PayloadBlockState.FullyPresent:
                    // The whole block (up to the virtual end, QEMU's rule for a short last block) must be in the file:
                    // a block cut by truncation is corruption even where the requested bytes survive.
                    long blockEnd = (long)entry.FileOffset + Math.Min(blockSize, VirtualDiskSize - (block * blockSize));
                    if (entry.FileOffset < VhdxLayout.Mebibyte || entry.FileOffset > (ulong)_file.Length || blockEnd > _file.Length)
                    {
                        throw Corrupt($"payload block {block} at file offset {entry.FileOffset} lies outside the file ({_file.Length} bytes)");
                    }

                    _file.Read((long)entry.FileOffset + within, piece);
                    break;
                case PayloadBlockState.PartiallyPresent:
                    throw new NotSupportedException($"{Name}: payload block {block} is PARTIALLY_PRESENT; sector bitmaps are not supported yet");
                case PayloadBlockState.NotPresent or PayloadBlockState.Undefined or PayloadBlockState.Zero or PayloadBlockState.Unmapped or (PayloadBlockState)5:
                    piece.Clear();
                    break;
                default:
                    throw Corrupt($"payload block {block} has the reserved BAT state {entry.State}");
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
        long blockSize = FileParameters.BlockSize;
        long block = offset / blockSize;
        var kind = KindOf(GetPayloadBlockEntry(block));
        long pos = (block + 1) * blockSize;
        for (int scanned = 0; pos < end && scanned < ExtentScanLimit && KindOf(GetPayloadBlockEntry(pos / blockSize)) == kind; scanned++)
        {
            pos += blockSize;
        }

        return new Extent(offset, Math.Min(pos, end) - offset, kind);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsFile)
        {
            _file.Dispose();
        }
    }

    private ExtentKind KindOf(BatEntry entry) => entry.PayloadState switch
    {
        PayloadBlockState.FullyPresent or PayloadBlockState.PartiallyPresent => ExtentKind.Data,
        PayloadBlockState.NotPresent when FileParameters.HasParent => ExtentKind.Unallocated,
        _ => ExtentKind.Zero,
    };

    private (VhdxHeader Header, int Slot) ReadCurrentHeader()
    {
        var both = ArrayPool<byte>.Shared.Rent(2 * VhdxHeader.Size);
        try
        {
            var one = both.AsSpan(0, VhdxHeader.Size);
            var two = both.AsSpan(VhdxHeader.Size, VhdxHeader.Size);
            ReadFile(VhdxHeader.Header1Offset, one, "header 1");
            ReadFile(VhdxHeader.Header2Offset, two, "header 2");
            bool ok1 = VhdxHeader.TryRead(one, out var h1) && h1.Version == VhdxHeader.CurrentVersion;
            bool ok2 = VhdxHeader.TryRead(two, out var h2) && h2.Version == VhdxHeader.CurrentVersion;
            if (ok1 && ok2)
            {
                if (h1.SequenceNumber == h2.SequenceNumber)
                {
                    return one.SequenceEqual(two) ? (h1, 1) : throw Corrupt("both headers carry the same sequence number but differ");
                }

                return h2.SequenceNumber > h1.SequenceNumber ? (h2, 2) : (h1, 1);
            }

            return ok1 ? (h1, 1) : ok2 ? (h2, 2) : throw Corrupt("neither header is valid (signature, checksum or version)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(both);
        }
    }

    private RegionTable ReadRegionTable()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(RegionTable.Size);
        try
        {
            var span = buffer.AsSpan(0, RegionTable.Size);
            foreach (long at in (ReadOnlySpan<long>)[RegionTable.Table1Offset, RegionTable.Table2Offset])
            {
                ReadFile(at, span, "region table");
                if (RegionTable.TryRead(span, out var table))
                {
                    return table;
                }
            }

            throw Corrupt("both region tables are damaged (signature or checksum)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private RegionTableEntry RequiredRegion(Guid guid, string what)
    {
        var found = RegionTable.Entries.Where(e => e.Guid == guid).ToList();
        if (found.Count != 1)
        {
            throw Corrupt($"the region table holds {found.Count} {what} regions (exactly one needed)");
        }

        var r = found[0];
        if (r.FileOffset < VhdxLayout.Mebibyte || r.FileOffset % VhdxLayout.Mebibyte != 0 || r.Length == 0 || r.Length % VhdxLayout.Mebibyte != 0
            || (long)r.FileOffset + r.Length > _file.Length)
        {
            throw Corrupt($"{what} region at {r.FileOffset}+{r.Length} is misaligned or outside the file ({_file.Length} bytes)");
        }

        return r;
    }

    private void ReadMetadata(RegionTableEntry region)
    {
        var buffer = ArrayPool<byte>.Shared.Rent((int)region.Length);
        try
        {
            var span = buffer.AsSpan(0, (int)region.Length);
            ReadFile((long)region.FileOffset, span, "metadata region");
            if (!MetadataTable.TryRead(span, out var table))
            {
                throw Corrupt("the metadata table has no \"metadata\" signature");
            }

            MetadataTable = table;
            foreach (var e in table.Entries)
            {
                bool known = !e.IsUser && (e.ItemId == VhdxGuids.FileParameters || e.ItemId == VhdxGuids.VirtualDiskSize
                    || e.ItemId == VhdxGuids.VirtualDiskId || e.ItemId == VhdxGuids.LogicalSectorSize
                    || e.ItemId == VhdxGuids.PhysicalSectorSize || e.ItemId == VhdxGuids.ParentLocator);
                if (e.IsRequired && !known)
                {
                    throw new NotSupportedException($"{Name}: unknown required metadata item {e.ItemId}");
                }

                if (e.Length != 0 && (e.Offset < MetadataTable.Size || (long)e.Offset + e.Length > region.Length))
                {
                    throw Corrupt($"metadata item {e.ItemId} at {e.Offset}+{e.Length} lies outside the metadata region");
                }
            }

            ReadOnlySpan<byte> Item(Guid id, string what, int exactLength)
            {
                var span = buffer.AsSpan(0, (int)region.Length);
                var e = table.FindSystemItem(id) ?? throw Corrupt($"the required metadata item {what} is missing");
                if (exactLength >= 0 && e.Length != exactLength)
                {
                    throw Corrupt($"metadata item {what} is {e.Length} bytes, expected {exactLength}");
                }

                if (e.Offset > span.Length || e.Length > span.Length - e.Offset)
                {
                    throw Corrupt($"metadata item {what} at {e.Offset}+{e.Length} lies outside the metadata region");
                }

                return span.Slice((int)e.Offset, (int)e.Length);
            }

            Format.FileParameters.TryRead(Item(VhdxGuids.FileParameters, "File Parameters", Format.FileParameters.Size), out var fp);
            Format.VirtualDiskSize.TryRead(Item(VhdxGuids.VirtualDiskSize, "Virtual Disk Size", Format.VirtualDiskSize.Size), out var size);
            Format.VirtualDiskId.TryRead(Item(VhdxGuids.VirtualDiskId, "Virtual Disk ID", Format.VirtualDiskId.Size), out var id);
            Format.LogicalSectorSize.TryRead(Item(VhdxGuids.LogicalSectorSize, "Logical Sector Size", Format.LogicalSectorSize.Size), out var logical);
            Format.PhysicalSectorSize.TryRead(Item(VhdxGuids.PhysicalSectorSize, "Physical Sector Size", Format.PhysicalSectorSize.Size), out var physical);
            if (!fp.IsBlockSizeValid)
            {
                throw Corrupt($"block size {fp.BlockSize} is not a power of two from 1 MiB to 256 MiB");
            }

            if (!logical.IsValid || !physical.IsValid)
            {
                throw Corrupt($"sector sizes {logical.Value}/{physical.Value} are not 512 or 4096");
            }

            if (size.Value == 0 || size.Value > Format.VirtualDiskSize.MaxValue || size.Value % logical.Value != 0)
            {
                throw Corrupt($"virtual disk size {size.Value} is zero, above 64 TiB or not a multiple of the {logical.Value}-byte sector");
            }

            if (fp.HasParent)
            {
                if (!Format.ParentLocator.TryRead(Item(VhdxGuids.ParentLocator, "Parent Locator", -1), out var locator))
                {
                    throw Corrupt("the parent locator item is too short");
                }

                ParentLocator = locator;
            }

            FileParameters = fp;
            VirtualDiskSize = (long)size.Value;
            VirtualDiskId = id.Value;
            LogicalSectorSize = (int)logical.Value;
            PhysicalSectorSize = (int)physical.Value;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void ReadFile(long offset, Span<byte> buffer, string what)
    {
        if (offset + buffer.Length > _file.Length)
        {
            throw Corrupt($"the file ({_file.Length} bytes) ends before the {what} at {offset}+{buffer.Length}");
        }

        _file.Read(offset, buffer);
    }

    private InvalidDataException Corrupt(string problem) => new($"{Name}: {problem}");
}
