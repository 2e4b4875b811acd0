using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx;

// Design notes:
// - What: the complete file-offset map of a FIXED-layout VHDX over a virtual disk, computed once and immutable
//   afterwards (so any number of threads may read it). Layout, all 1 MiB aligned:
//     0        header section: file type identifier, header 1 (seq 1), header 2 (seq 2, current), region
//              tables 1 and 2 (identical, BAT + metadata, Required = 1); bytes 320 KiB..1 MiB reserved (zero)
//     1 MiB    log, 1 MiB, empty (LogGuid = 0). A real area, because QEMU's first block allocation logs there.
//     2 MiB    metadata region, 1 MiB: table + five system items packed at +64 KiB with exact lengths
//              (File Parameters: LeaveBlocksAllocated = 1; size; disk id; logical 512; physical 4096).
//     3 MiB    BAT region, RoundUp(NSB * (ChunkRatio + 1) * 8, 1 MiB) bytes (BatGeometry does the BAT arithmetic).
//     then     payload blocks in disk order: block k at PayloadOffset + k * BlockSize; every payload entry is
//              FULLY_PRESENT (6) with that offset, every sector-bitmap entry 0. File length = end of the last block.
// - Nothing proportional to the disk: the BAT is arithmetic (BatEntryAt), the extent map has at most 8 runs, and
//   the only buffer is ~385 KiB of header section and metadata table. A 64 TiB layout costs the same as 1 MiB.
// - Virtual size = disk length rounded up to the logical sector (512 by default; VhdxLayoutOptions.VirtualSizeAlignment
//   can raise it, e.g. for 7-Zip's odd-sector bug); bytes past the disk (and the rest of the last block) are a Zero
//   run. The VHDX format requires the size to be a multiple of the logical sector size.
// - Block size 32 MiB by default: it keeps the BAT at 16 MiB even at 64 TiB (1 MiB blocks would need 512 MiB of
//   BAT that a reader such as QEMU loads whole), it is QEMU's own choice up to 32 TiB and Hyper-V's dynamic default,
//   and with every block FULLY_PRESENT the block size never changes which bytes a reader sees. The cost is the
//   last block's padding, which is a hole (Zero) in the file.
// - Determinism: FileWriteGuid, DataWriteGuid and Virtual Disk ID are name-based GUIDs (SHA-256 of the identity
//   GUID and a purpose label, truncated, RFC 9562 version 8 + RFC 4122 variant), so the same backup point gives
//   the same bytes on every run and machine. A differencing child links to DataWriteGuid.
// - Not done here: writes (header/log updates by a consumer), dynamic layouts, 4 KiB logical sectors for QEMU.

/// <summary>The immutable file-offset map of a synthesized fixed VHDX over a disk of a given length.</summary>
public sealed class VhdxLayout
{
    /// <summary>1 MiB, the VHDX object alignment.</summary>
    public const int Mebibyte = 1024 * 1024;

    /// <summary>File offset of the log.</summary>
    public const long LogOffset = Mebibyte;

    /// <summary>Length of the log.</summary>
    public const int LogLength = Mebibyte;

    /// <summary>File offset of the metadata region.</summary>
    public const long MetadataOffset = 2 * Mebibyte;

    /// <summary>Length of the metadata region.</summary>
    public const int MetadataLength = Mebibyte;

    /// <summary>File offset of the BAT region.</summary>
    public const long BatOffset = 3 * Mebibyte;

    /// <summary>Sequence number of header 1; header 2 has one more and is current.</summary>
    public const ulong Header1SequenceNumber = 1;

    private const int HeaderSectionUsed = (int)RegionTable.Table2Offset + RegionTable.Size;
    private const int MetadataItemsOffset = MetadataTable.Size;
    private const int MetadataItemsLength = FileParameters.Size + Format.VirtualDiskSize.Size + Format.VirtualDiskId.Size + LogicalSectorSize.Size + PhysicalSectorSize.Size;
    private const int MetadataUsed = MetadataItemsOffset + MetadataItemsLength;

    private readonly LayoutExtent[] _extents;
    private readonly byte[] _bytes;
    private readonly long _usedBatEntries;

    private VhdxLayout(long diskLength, Guid identity, VhdxLayoutOptions options)
    {
        Validate(diskLength, options);
        Identity = identity;
        Options = options;
        DiskLength = diskLength;
        VirtualDiskSize = BlockAlignment.AlignUp(diskLength, Math.Max(options.LogicalSectorSize, options.VirtualSizeAlignment));

        BlockSize = options.BlockSize;
        Geometry = new BatGeometry(VirtualDiskSize, BlockSize, options.LogicalSectorSize, hasParent: false);
        _usedBatEntries = Geometry.TotalBatEntries; // the last used entry is the last payload block's
        PayloadOffset = BatOffset + BatLength;
        FileLength = PayloadOffset + (PayloadBlockCount * BlockSize);

        FileWriteGuid = DeriveGuid(identity, "BackupFuse.Vhdx/v1/FileWriteGuid");
        DataWriteGuid = DeriveGuid(identity, "BackupFuse.Vhdx/v1/DataWriteGuid");
        VirtualDiskId = DeriveGuid(identity, "BackupFuse.Vhdx/v1/VirtualDiskId");

        _bytes = new byte[HeaderSectionUsed + MetadataUsed];
        WriteHeaderSection(_bytes.AsSpan(0, HeaderSectionUsed));
        WriteMetadata(_bytes.AsSpan(HeaderSectionUsed, MetadataUsed));

        var extents = new List<LayoutExtent>(8)
        {
            new(0, HeaderSectionUsed, LayoutExtentKind.Bytes, 0),
            new(HeaderSectionUsed, MetadataOffset - HeaderSectionUsed, LayoutExtentKind.Zero, 0),
            new(MetadataOffset, MetadataUsed, LayoutExtentKind.Bytes, HeaderSectionUsed),
            new(MetadataOffset + MetadataUsed, BatOffset - (MetadataOffset + MetadataUsed), LayoutExtentKind.Zero, 0),
            new(BatOffset, _usedBatEntries * BatEntry.Size, LayoutExtentKind.Bat, 0),
            new(BatOffset + (_usedBatEntries * BatEntry.Size), BatLength - (_usedBatEntries * BatEntry.Size), LayoutExtentKind.Zero, 0),
            new(PayloadOffset, DiskLength, LayoutExtentKind.Payload, 0),
            new(PayloadOffset + DiskLength, FileLength - (PayloadOffset + DiskLength), LayoutExtentKind.Zero, 0),
        };
        extents.RemoveAll(e => e.Length == 0);
        _extents = [.. extents];
    }

    /// <summary>Computes the layout of a VHDX over a disk of <paramref name="diskLength"/> bytes.</summary>
    /// <exception cref="InvalidDataException">The disk is larger than the 64 TiB a VHDX can hold.</exception>
    public static VhdxLayout Create(long diskLength, Guid identity, VhdxLayoutOptions? options = null) =>
        new(diskLength, identity, options ?? VhdxLayoutOptions.Default);

    /// <summary>The identity the GUIDs derive from (e.g. the backup point's id).</summary>
    public Guid Identity { get; }

    /// <summary>The options used.</summary>
    public VhdxLayoutOptions Options { get; }

    /// <summary>Length of the disk source in bytes.</summary>
    public long DiskLength { get; }

    /// <summary>Virtual disk size: <see cref="DiskLength"/> rounded up to the logical sector size.</summary>
    public long VirtualDiskSize { get; }

    /// <summary>Payload block size.</summary>
    public int BlockSize { get; }

    /// <summary>The BAT arithmetic of this file (no parent).</summary>
    public BatGeometry Geometry { get; }

    /// <summary>Payload blocks per sector-bitmap chunk.</summary>
    public long ChunkRatio => Geometry.ChunkRatio;

    /// <summary>Number of payload blocks (NPB).</summary>
    public long PayloadBlockCount => Geometry.PayloadBlockCount;

    /// <summary>Number of sector-bitmap entries (NSB).</summary>
    public long SectorBitmapBlockCount => Geometry.SectorBitmapBlockCount;

    /// <summary>Length of the BAT region.</summary>
    public long BatLength => Geometry.BatLength;

    /// <summary>File offset of payload block 0.</summary>
    public long PayloadOffset { get; }

    /// <summary>Length of the synthesized file (a 1 MiB multiple).</summary>
    public long FileLength { get; }

    /// <summary>Header FileWriteGuid.</summary>
    public Guid FileWriteGuid { get; }

    /// <summary>Header DataWriteGuid: what a differencing child's parent_linkage names.</summary>
    public Guid DataWriteGuid { get; }

    /// <summary>The Virtual Disk ID metadata item.</summary>
    public Guid VirtualDiskId { get; }

    /// <summary>The runs of the file, sorted, contiguous, covering [0, FileLength).</summary>
    public ReadOnlySpan<LayoutExtent> Extents => _extents;

    /// <summary>The header that is current (slot 2).</summary>
    public VhdxHeader CurrentHeader => Header(Header1SequenceNumber + 1);

    /// <summary>BAT index of payload block <paramref name="block"/>: k + floor(k / ChunkRatio).</summary>
    public long PayloadBatIndex(long block) => Geometry.PayloadBatIndex(block);

    /// <summary>BAT index of the sector-bitmap entry of <paramref name="chunk"/>.</summary>
    public long SectorBitmapBatIndex(long chunk) => Geometry.SectorBitmapBatIndex(chunk);

    /// <summary>File offset of payload block <paramref name="block"/>.</summary>
    public long BlockFileOffset(long block) => PayloadOffset + (block * BlockSize);

    /// <summary>The raw BAT entry at <paramref name="index"/> of the BAT region (0 beyond the used entries).</summary>
    public ulong BatEntryAt(long index)
    {
        var (isSectorBitmap, block) = Geometry.Locate(index);
        if (isSectorBitmap)
        {
            return 0; // SB_BLOCK_NOT_PRESENT
        }

        return block < PayloadBlockCount
            ? (ulong)BlockFileOffset(block) | (ulong)PayloadBlockState.FullyPresent
            : 0;
    }

    /// <summary>Index of the extent holding <paramref name="fileOffset"/> (which must be inside the file).</summary>
    public int FindExtent(long fileOffset)
    {
        int lo = 0, hi = _extents.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_extents[mid].FileOffset <= fileOffset)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>Copies precomputed structure bytes (for <see cref="LayoutExtentKind.Bytes"/> runs).</summary>
    public void ReadBytes(long sourceOffset, Span<byte> destination) =>
        _bytes.AsSpan(checked((int)sourceOffset), destination.Length).CopyTo(destination);

    /// <summary>Computes BAT bytes starting at byte <paramref name="batByteOffset"/> of the BAT region.</summary>
    public void ReadBat(long batByteOffset, Span<byte> destination)
    {
        Span<byte> entry = stackalloc byte[BatEntry.Size];
        long index = batByteOffset / BatEntry.Size;
        int skip = (int)(batByteOffset % BatEntry.Size);
        while (!destination.IsEmpty)
        {
            if (skip == 0 && destination.Length >= BatEntry.Size)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(destination, BatEntryAt(index));
                destination = destination[BatEntry.Size..];
            }
            else
            {
                BinaryPrimitives.WriteUInt64LittleEndian(entry, BatEntryAt(index));
                int n = Math.Min(BatEntry.Size - skip, destination.Length);
                entry.Slice(skip, n).CopyTo(destination);
                destination = destination[n..];
                skip = 0;
            }

            index++;
        }
    }

    /// <summary>
    /// A name-based GUID: SHA-256 of the identity's bytes and a UTF-8 label, truncated to 16 bytes, with the
    /// version (8, RFC 9562 custom) and RFC 4122 variant bits set in the <see cref="Guid"/> field layout.
    /// </summary>
    public static Guid DeriveGuid(Guid identity, string purpose)
    {
        var input = new byte[16 + Encoding.UTF8.GetByteCount(purpose)];
        identity.TryWriteBytes(input);
        Encoding.UTF8.GetBytes(purpose, input.AsSpan(16));
        Span<byte> hash = stackalloc byte[32];
        IdentityHash.HashData(input, hash);
        hash[7] = (byte)((hash[7] & 0x0F) | 0x80); // Data3 is stored little-endian: byte 7 holds its top nibble
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16]);
    }

    private static void Validate(long diskLength, VhdxLayoutOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (diskLength <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(diskLength), diskLength, "a VHDX needs a disk of at least one byte");
        }

        if (!new FileParameters((uint)options.BlockSize, true, false).IsBlockSizeValid)
        {
            throw new ArgumentException($"block size {options.BlockSize} is not a power of two from 1 MiB to 256 MiB", nameof(options));
        }

        if (options.LogicalSectorSize is not (512 or 4096) || options.PhysicalSectorSize is not (512 or 4096))
        {
            throw new ArgumentException("sector sizes must be 512 or 4096", nameof(options));
        }

        if (options.VirtualSizeAlignment <= 0 || (options.VirtualSizeAlignment & (options.VirtualSizeAlignment - 1)) != 0
            || options.VirtualSizeAlignment > options.BlockSize)
        {
            throw new ArgumentException($"virtual size alignment {options.VirtualSizeAlignment} must be a power of two no larger than the block size", nameof(options));
        }

        if (BlockAlignment.AlignUp(diskLength, Math.Max(options.LogicalSectorSize, options.VirtualSizeAlignment)) > (long)Format.VirtualDiskSize.MaxValue)
        {
            // Not an argument bug but a fact about the disk (a backup of a bigger disk is valid): InvalidDataException,
            // which callers report as one line (the mount logs it once per plugin and refuses to serve it).
            throw new InvalidDataException($"disk of {diskLength} bytes is larger than VHDX's 64 TiB limit ({Format.VirtualDiskSize.MaxValue} bytes): it cannot be shown as a VHDX");
        }
    }

    private VhdxHeader Header(ulong sequenceNumber) =>
        new(sequenceNumber, FileWriteGuid, DataWriteGuid, Guid.Empty, 0, VhdxHeader.CurrentVersion, LogLength, LogOffset);

    private void WriteHeaderSection(Span<byte> section)
    {
        new FileTypeIdentifier(Options.Creator).Write(section);
        Header(Header1SequenceNumber).Write(section[(int)VhdxHeader.Header1Offset..]);
        Header(Header1SequenceNumber + 1).Write(section[(int)VhdxHeader.Header2Offset..]);
        var regions = new RegionTable(
        [
            new RegionTableEntry(VhdxGuids.BatRegion, BatOffset, checked((uint)BatLength), Required: true),
            new RegionTableEntry(VhdxGuids.MetadataRegion, MetadataOffset, MetadataLength, Required: true),
        ]);
        regions.Write(section[(int)RegionTable.Table1Offset..]);
        regions.Write(section[(int)RegionTable.Table2Offset..]);
    }

    private void WriteMetadata(Span<byte> region)
    {
        var entries = new List<MetadataTableEntry>(5);
        uint offset = MetadataItemsOffset;
        void Add(Guid id, int length, bool isVirtualDisk)
        {
            entries.Add(new MetadataTableEntry(id, offset, (uint)length, IsUser: false, isVirtualDisk, IsRequired: true));
            offset += (uint)length;
        }

        Span<byte> items = region[MetadataItemsOffset..];
        new FileParameters((uint)BlockSize, LeaveBlocksAllocated: true, HasParent: false).Write(items);
        Add(VhdxGuids.FileParameters, FileParameters.Size, isVirtualDisk: false);
        new Format.VirtualDiskSize((ulong)VirtualDiskSize).Write(items[(int)(offset - MetadataItemsOffset)..]);
        Add(VhdxGuids.VirtualDiskSize, Format.VirtualDiskSize.Size, isVirtualDisk: true);
        new Format.VirtualDiskId(VirtualDiskId).Write(items[(int)(offset - MetadataItemsOffset)..]);
        Add(VhdxGuids.VirtualDiskId, Format.VirtualDiskId.Size, isVirtualDisk: true);
        new LogicalSectorSize((uint)Options.LogicalSectorSize).Write(items[(int)(offset - MetadataItemsOffset)..]);
        Add(VhdxGuids.LogicalSectorSize, LogicalSectorSize.Size, isVirtualDisk: true);
        new PhysicalSectorSize((uint)Options.PhysicalSectorSize).Write(items[(int)(offset - MetadataItemsOffset)..]);
        Add(VhdxGuids.PhysicalSectorSize, PhysicalSectorSize.Size, isVirtualDisk: true);
        new MetadataTable(entries).Write(region);
    }
}
