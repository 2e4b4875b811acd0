using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Differencing;

// Design notes:
// - The layout a new differencing file gets (all 1 MiB aligned, nothing overlapping):
//     0        header section: file type identifier, headers (seq 1 and 2, LogGuid 0), two identical region tables
//     1 MiB    log, 1 MiB (QEMU's and Hyper-V's size; 254 metadata sectors per entry)
//     2 MiB    metadata region, 4 MiB:
//                +0       metadata table
//                +64 KiB  system items, packed with exact lengths: File Parameters (HasParent = 1), Virtual Disk
//                         Size, Virtual Disk ID, Logical and Physical Sector Size (copied from the parent, flags 0x6),
//                         Parent Locator (flags 0x4)
//                +128 KiB patch index item (user item, 8 KiB): header + one u64 per page slot
//                +1/2/3 MiB three patch page items (user items, 1 MiB each = 256 slots of 4 KiB)
//     6 MiB    BAT region, RoundUp(NSB * (ChunkRatio + 1) * 8, 1 MiB); all entries 0 (NOT_PRESENT)
//     then     payload and sector-bitmap blocks, appended at RoundUp(EOF, 1 MiB) as they are allocated.
// - Why 4 MiB of metadata: a metadata item is at most 1 MiB (spec), so the patch pages live in three 1 MiB items:
//   768 pages = 3 MiB, enough for the whole 1 MiB header section, the whole 1 MiB log area and 1 MiB more of
//   metadata/BAT/tail writes. QEMU needs 2 pages (it rewrites both headers); Hyper-V may rewrite the log area too.
// - The patch items are IsUser = 1, IsRequired = 0, IsVirtualDisk = 0: other readers ignore them (libvhdi accepts
//   unknown items with a real offset; only empty ones break it), and they stay with this file.
// - CheckChild is the other side of Build: what DifferencingVhdxFile.Open demands of an existing file beyond what
//   VhdxReader already checks (HasParent, the parent linkage, the size, the patch items in place).

/// <summary>Constants, creation and checks of the on-disk layout of a BackupFuse differencing VHDX.</summary>
public static class DifferencingVhdxFormat
{
    /// <summary>1 MiB.</summary>
    public const int Mebibyte = 1024 * 1024;

    /// <summary>File offset of the log.</summary>
    public const long LogOffset = Mebibyte;

    /// <summary>Length of the log.</summary>
    public const int LogLength = Mebibyte;

    /// <summary>File offset of the metadata region.</summary>
    public const long MetadataOffset = 2 * Mebibyte;

    /// <summary>Length of the metadata region.</summary>
    public const int MetadataLength = 4 * Mebibyte;

    /// <summary>File offset of the BAT region.</summary>
    public const long BatOffset = 6 * Mebibyte;

    /// <summary>Offset of the system items inside the metadata region.</summary>
    public const int SystemItemsOffset = 64 * 1024;

    /// <summary>Offset of the patch index item inside the metadata region.</summary>
    public const int PatchIndexOffset = 128 * 1024;

    /// <summary>Length of the patch index item.</summary>
    public const int PatchIndexLength = 8 * 1024;

    /// <summary>Number of patch page items.</summary>
    public const int PatchPageItems = 3;

    /// <summary>Length of one patch page item.</summary>
    public const int PatchPageItemLength = Mebibyte;

    /// <summary>Pages per patch page item.</summary>
    public const int PagesPerItem = PatchPageItemLength / ISynthesizedPatchStore.PageSize;

    /// <summary>Total patch page slots.</summary>
    public const int PatchSlots = PatchPageItems * PagesPerItem;

    /// <summary>Size of the patch index header before the slot table.</summary>
    public const int PatchIndexHeaderSize = 64;

    /// <summary>Patch index version.</summary>
    public const uint PatchIndexVersion = 1;

    /// <summary>User metadata item holding the patch index.</summary>
    public static readonly Guid PatchIndexItem = new("5b0f3c1e-8a47-4d2b-9f1e-6c2d7a9e4b01");

    /// <summary>User metadata items holding patch pages (slot i lives in item i / 256).</summary>
    public static readonly Guid[] PatchPageItemIds =
    [
        new("5b0f3c1e-8a47-4d2b-9f1e-6c2d7a9e4b10"),
        new("5b0f3c1e-8a47-4d2b-9f1e-6c2d7a9e4b11"),
        new("5b0f3c1e-8a47-4d2b-9f1e-6c2d7a9e4b12"),
    ];

    /// <summary>Signature of the patch index header.</summary>
    public static ReadOnlySpan<byte> PatchIndexSignature => "BFPATCH1"u8;

    /// <summary>Offset inside the metadata region of patch page item <paramref name="item"/>.</summary>
    public static int PatchPageItemOffset(int item) => (item + 1) * Mebibyte;

    /// <summary>The parent locator item of <paramref name="parent"/>.</summary>
    public static ParentLocator Locator(DifferencingParent parent)
    {
        ArgumentNullException.ThrowIfNull(parent);
        var entries = new List<KeyValuePair<string, string>>
        {
            new(ParentLocator.ParentLinkageKey, parent.DataWriteGuid.ToString("B")),
            new(ParentLocator.RelativePathKey, parent.RelativePath.Replace('/', '\\')),
        };
        // libvhdi 20210425 (vhdiinfo/vhdimount) reads only absolute_win32_path or volume_path, never relative_path, and
        // then looks for the text after the last '\' next to the child [verified]. So an absolute path is always
        // written; without one from the caller it is \\?\C:\<file name of the relative path>. Windows tries
        // relative_path first, so the made-up drive is harmless there.
        string relative = parent.RelativePath.Replace('/', '\\');
        entries.Add(new(ParentLocator.AbsoluteWin32PathKey, parent.AbsoluteWin32Path ?? @"\\?\C:\" + relative[(relative.LastIndexOf('\\') + 1)..]));

        return new ParentLocator(VhdxGuids.VhdxParentLocatorType, entries);
    }

    /// <summary>
    /// The bytes of a new differencing file that are not zero: the header section [0, 1 MiB) and the metadata region.
    /// The file is <see cref="BatOffset"/> + BAT length long; everything else (log, BAT) is zero.
    /// </summary>
    public static (byte[] HeaderSection, byte[] Metadata, long FileLength) Build(DifferencingParent parent, int blockSize, Guid fileWriteGuid, Guid dataWriteGuid)
    {
        Validate(parent, blockSize);
        long batLength = new BatGeometry(parent.VirtualSize, blockSize, parent.LogicalSectorSize, hasParent: true).BatLength;
        var section = new byte[(int)RegionTable.Table2Offset + RegionTable.Size];
        new FileTypeIdentifier("BackupFuse").Write(section);
        for (ulong seq = 1; seq <= 2; seq++)
        {
            new VhdxHeader(seq, fileWriteGuid, dataWriteGuid, Guid.Empty, 0, VhdxHeader.CurrentVersion, LogLength, LogOffset)
                .Write(section.AsSpan((int)(seq == 1 ? VhdxHeader.Header1Offset : VhdxHeader.Header2Offset)));
        }

        var regions = new RegionTable(
        [
            new RegionTableEntry(VhdxGuids.BatRegion, BatOffset, checked((uint)batLength), Required: true),
            new RegionTableEntry(VhdxGuids.MetadataRegion, MetadataOffset, MetadataLength, Required: true),
        ]);
        regions.Write(section.AsSpan((int)RegionTable.Table1Offset));
        regions.Write(section.AsSpan((int)RegionTable.Table2Offset));

        var metadata = new byte[PatchIndexOffset + PatchIndexLength];
        var entries = new List<MetadataTableEntry>();
        uint at = SystemItemsOffset;
        void Add(Guid id, int length, bool isVirtualDisk)
        {
            entries.Add(new MetadataTableEntry(id, at, (uint)length, IsUser: false, isVirtualDisk, IsRequired: true));
            at += (uint)length;
        }

        new FileParameters((uint)blockSize, LeaveBlocksAllocated: false, HasParent: true).Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.FileParameters, FileParameters.Size, isVirtualDisk: false);
        new VirtualDiskSize((ulong)parent.VirtualSize).Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.VirtualDiskSize, VirtualDiskSize.Size, isVirtualDisk: true);
        new VirtualDiskId(parent.VirtualDiskId).Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.VirtualDiskId, VirtualDiskId.Size, isVirtualDisk: true);
        new LogicalSectorSize((uint)parent.LogicalSectorSize).Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.LogicalSectorSize, LogicalSectorSize.Size, isVirtualDisk: true);
        new PhysicalSectorSize((uint)parent.PhysicalSectorSize).Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.PhysicalSectorSize, PhysicalSectorSize.Size, isVirtualDisk: true);
        var locator = Locator(parent);
        if (at + locator.ByteCount > PatchIndexOffset)
        {
            throw new ArgumentException($"the parent locator ({locator.ByteCount} bytes) is too long", nameof(parent));
        }

        locator.Write(metadata.AsSpan((int)at));
        Add(VhdxGuids.ParentLocator, locator.ByteCount, isVirtualDisk: false);

        entries.Add(new MetadataTableEntry(PatchIndexItem, PatchIndexOffset, PatchIndexLength, IsUser: true, IsVirtualDisk: false, IsRequired: false));
        for (int i = 0; i < PatchPageItems; i++)
        {
            entries.Add(new MetadataTableEntry(PatchPageItemIds[i], (uint)PatchPageItemOffset(i), PatchPageItemLength, IsUser: true, IsVirtualDisk: false, IsRequired: false));
        }

        new MetadataTable(entries).Write(metadata);
        DifferencingPatchStore.WriteEmptyIndex(metadata.AsSpan(PatchIndexOffset, PatchIndexLength));
        return (section, metadata, BatOffset + batLength);
    }

    private static void Validate(DifferencingParent parent, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(parent);
        if (!new FileParameters((uint)blockSize, false, true).IsBlockSizeValid)
        {
            throw new ArgumentException($"block size {blockSize} is not a power of two from 1 MiB to 256 MiB", nameof(blockSize));
        }

        if (parent.LogicalSectorSize is not (512 or 4096) || parent.PhysicalSectorSize is not (512 or 4096))
        {
            throw new ArgumentException("sector sizes must be 512 or 4096", nameof(parent));
        }

        if (parent.VirtualSize <= 0 || parent.VirtualSize % parent.LogicalSectorSize != 0 || (ulong)parent.VirtualSize > VirtualDiskSize.MaxValue)
        {
            throw new ArgumentException($"virtual size {parent.VirtualSize} must be a positive multiple of the logical sector size, at most 64 TiB", nameof(parent));
        }

        if (string.IsNullOrEmpty(parent.RelativePath) || parent.RelativePath.Contains('\0', StringComparison.Ordinal)
            || (parent.AbsoluteWin32Path is { } a && (!a.StartsWith(@"\\?\", StringComparison.Ordinal) || a.Contains('\0', StringComparison.Ordinal))))
        {
            throw new ArgumentException("the parent needs a relative path without NUL, and an absolute_win32_path must start with \\\\?\\", nameof(parent));
        }
    }

    /// <summary>
    /// Checks that the file <paramref name="reader"/> reads is a BackupFuse differencing file: HasParent, a VHDX parent
    /// locator whose parent_linkage is <paramref name="expectedParentDataWriteGuid"/>, the virtual size
    /// <paramref name="expectedVirtualSize"/> when given, and the patch items at their places. Returns the file offset
    /// of the metadata region; InvalidDataException naming <paramref name="path"/> for every inconsistency.
    /// </summary>
    internal static long CheckChild(VhdxReader reader, string path, Guid expectedParentDataWriteGuid, long? expectedVirtualSize)
    {
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
        CheckUserItem(reader, region, PatchIndexItem, PatchIndexOffset, PatchIndexLength, Corrupt);
        for (int i = 0; i < PatchPageItems; i++)
        {
            CheckUserItem(reader, region, PatchPageItemIds[i], PatchPageItemOffset(i), PatchPageItemLength, Corrupt);
        }

        return (long)region.FileOffset;
    }

    private static void CheckUserItem(VhdxReader reader, RegionTableEntry region, Guid id, int offset, int length, Func<string, InvalidDataException> corrupt)
    {
        var item = reader.MetadataTable.Entries.FirstOrDefault(e => e.IsUser && e.ItemId == id);
        if (item.ItemId != id || item.Offset != offset || item.Length != length || offset + length > region.Length)
        {
            throw corrupt($"the BackupFuse patch item {id} is missing or misplaced (not a BackupFuse differencing file?)");
        }
    }
}
