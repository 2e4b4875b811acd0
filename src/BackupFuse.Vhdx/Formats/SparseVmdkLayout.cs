using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - The file-offset map of a single-file hosted sparse VMDK (createType "monolithicSparse", header version 1) whose
//   EVERY grain is allocated and laid out linearly: grain i lives at sector OverHead + i * GrainSize. So the data area
//   is the disk itself, byte for byte, and a guest write to any grain lands on the disk at the same offset; no reader
//   or writer ever allocates a grain or appends to the file (a VMDK writer allocates only grains whose table entry is 0).
// - Why monolithicSparse and not monolithicFlat: a flat VMDK is two files (a descriptor naming a raw extent file),
//   so the mount would have to show a second, invisible-to-the-plugin file per disk, and a hypervisor handed the
//   descriptor alone (libvirt, Proxmox, an upload) breaks. A sparse extent carries its descriptor inside, one file is
//   the whole disk, and every VMDK reader (QEMU, VMware, VirtualBox, libvmdk, 7-Zip) opens it.
// - Layout, in sectors (as qemu-img lays out its own, so readers meet nothing unusual):
//     0                 SparseExtentHeader (flags: newline test + redundant grain directory)
//     1 .. 20           embedded descriptor (20 sectors: QEMU rewrites exactly DESC_SIZE = 10240 bytes there)
//     21                redundant grain directory (RGD), then the redundant grain tables
//     GdOffset          grain directory (GD), then the grain tables
//     OverHead          grains (rounded up to a whole grain), 64 KiB each, 512 entries per table (32 MiB per table)
//   File length = (OverHead + Grains * GrainSize) * 512; the last grain's part past the disk reads as zeros.
// - Nothing proportional to the disk is held: directory and table bytes are computed per read from the entry index
//   (entry k of the tables = OverHead + k * GrainSize), so a 2 TiB disk (2 x 128 MiB of tables) costs the same as 1 MiB.
// - Limit: grain and table offsets are 32-bit sector numbers, so the last grain must start below 2^32 sectors. With
//   the 256 MiB of tables in front, that is a disk of 2 TiB less 256.5 MiB at most (MaxDiskSize; VMware's own limit
//   for hosted sparse extents is 2 TiB). Larger disks are refused (InvalidDataException): they need .vhdx or .img.
// - Immutable; thread-safe.

/// <summary>The file-offset map of a synthesized, fully allocated, linear monolithicSparse VMDK.</summary>
public sealed class SparseVmdkLayout
{
    /// <summary>Bytes per sector.</summary>
    public const int SectorSize = 512;

    /// <summary>Grain size in sectors (64 KiB, what VMware and QEMU use).</summary>
    public const int GrainSectors = 128;

    /// <summary>Entries per grain table.</summary>
    public const int EntriesPerTable = 512;

    /// <summary>Sector of the embedded descriptor.</summary>
    public const int DescriptorOffsetSectors = 1;

    /// <summary>Sectors reserved for the descriptor.</summary>
    public const int DescriptorSectors = 20;

    /// <summary>Bytes of the header plus the descriptor: the part of the file a hypervisor rewrites.</summary>
    public const int RewritableLength = (DescriptorOffsetSectors + DescriptorSectors) * SectorSize;

    /// <summary>Sectors of one grain table.</summary>
    public const int TableSectors = EntriesPerTable * 4 / SectorSize;

    /// <summary>The largest disk the layout addresses: 2 TiB less 256.5 MiB (see the design notes).</summary>
    public const long MaxDiskSize = 2198754295808;

    private SparseVmdkLayout(long diskSize)
    {
        if (diskSize <= 0 || diskSize % SectorSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(diskSize), diskSize, "a VMDK holds whole 512-byte sectors");
        }

        DiskSize = diskSize;
        CapacitySectors = diskSize / SectorSize;
        Grains = (CapacitySectors + GrainSectors - 1) / GrainSectors;
        Tables = (Grains + EntriesPerTable - 1) / EntriesPerTable;
        DirectorySectors = BlockAlignment.AlignUp(Tables * 4, SectorSize) / SectorSize;
        RgdOffsetSectors = DescriptorOffsetSectors + DescriptorSectors;
        GdOffsetSectors = RgdOffsetSectors + DirectorySectors + (Tables * TableSectors);
        OverHeadSectors = BlockAlignment.AlignUp(GdOffsetSectors + DirectorySectors + (Tables * TableSectors), GrainSectors);
        if (OverHeadSectors + ((Grains - 1) * GrainSectors) > uint.MaxValue)
        {
            throw new InvalidDataException($"disk of {diskSize} bytes is larger than a sparse VMDK can address ({MaxDiskSize} bytes, 2 TiB less its tables: grain offsets are 32-bit sector numbers): it cannot be shown as a VMDK (use .vhdx or .img)");
        }
    }

    /// <summary>The layout of a VMDK over a disk of <paramref name="diskSize"/> bytes (a multiple of 512).</summary>
    /// <exception cref="InvalidDataException">The disk is too large for a sparse VMDK.</exception>
    public static SparseVmdkLayout Create(long diskSize) => new(diskSize);

    /// <summary>Disk size in bytes.</summary>
    public long DiskSize { get; }

    /// <summary>Disk size in sectors (the header's capacity).</summary>
    public long CapacitySectors { get; }

    /// <summary>Number of grains (the last may extend past the disk).</summary>
    public long Grains { get; }

    /// <summary>Number of grain tables (and directory entries).</summary>
    public long Tables { get; }

    /// <summary>Sectors of one grain directory.</summary>
    public long DirectorySectors { get; }

    /// <summary>Sector of the redundant grain directory.</summary>
    public long RgdOffsetSectors { get; }

    /// <summary>Sector of the grain directory.</summary>
    public long GdOffsetSectors { get; }

    /// <summary>Sector of grain 0.</summary>
    public long OverHeadSectors { get; }

    /// <summary>File offset of grain 0 (disk byte d is file byte DataOffset + d).</summary>
    public long DataOffset => OverHeadSectors * SectorSize;

    /// <summary>Length of the file.</summary>
    public long FileLength => (OverHeadSectors + (Grains * GrainSectors)) * SectorSize;

    /// <summary>Sector of the first redundant grain table.</summary>
    public long RedundantTablesSectors => RgdOffsetSectors + DirectorySectors;

    /// <summary>Sector of the first grain table.</summary>
    public long TablesSectors => GdOffsetSectors + DirectorySectors;

    /// <summary>The header of this layout.</summary>
    public SparseExtentHeader Header => new(1, SparseExtentHeader.ValidNewLineDetection | SparseExtentHeader.RedundantGrainTable, (ulong)CapacitySectors,
        GrainSectors, DescriptorOffsetSectors, DescriptorSectors, EntriesPerTable, (ulong)RgdOffsetSectors, (ulong)GdOffsetSectors, (ulong)OverHeadSectors, false);

    /// <summary>Grain table entry <paramref name="index"/> (counted over all tables): the grain's sector, 0 past the last grain.</summary>
    public uint TableEntry(long index) => index < Grains ? (uint)(OverHeadSectors + (index * GrainSectors)) : 0;

    /// <summary>Entry <paramref name="index"/> of the grain directory (or the redundant one): its table's sector, 0 past the last table.</summary>
    public uint DirectoryEntry(long index, bool redundant) =>
        index < Tables ? (uint)((redundant ? RedundantTablesSectors : TablesSectors) + (index * TableSectors)) : 0;

    /// <summary>
    /// The synthesized header and descriptor (<see cref="RewritableLength"/> bytes) of a disk named
    /// <paramref name="fileName"/> whose identifiers derive from <paramref name="identity"/>.
    /// </summary>
    public byte[] CreateHeaderAndDescriptor(Guid identity, string fileName)
    {
        var bytes = new byte[RewritableLength];
        Header.Write(bytes);
        var text = Encoding.UTF8.GetBytes(Descriptor(identity, fileName));
        if (text.Length >= DescriptorSectors * SectorSize)
        {
            throw new ArgumentException($"the VMDK descriptor for {fileName} does not fit in {DescriptorSectors} sectors", nameof(fileName));
        }

        text.CopyTo(bytes, DescriptorOffsetSectors * SectorSize);
        return bytes;
    }

    /// <summary>The descriptor text (CID and image UUID derived from <paramref name="identity"/>).</summary>
    public string Descriptor(Guid identity, string fileName)
    {
        Span<byte> id = stackalloc byte[16];
        VhdxLayout.DeriveGuid(identity, "BackupFuse.Vmdk/v1/CID").TryWriteBytes(id);
        uint cid = BinaryPrimitives.ReadUInt32LittleEndian(id) & 0x7FFFFFFF; // never ffffffff ("no parent") nor fffffffe
        long cylinders = Math.Min(16383, CapacitySectors / (16 * 63));
        var name = new StringBuilder(fileName.Length);
        foreach (char c in fileName)
        {
            name.Append(c is '"' or '\\' || char.IsControl(c) ? '_' : c);
        }

        return "# Disk DescriptorFile\n" +
               "version=1\n" +
               "encoding=\"UTF-8\"\n" +
               $"CID={cid:x8}\n" +
               "parentCID=ffffffff\n" +
               "createType=\"monolithicSparse\"\n" +
               "\n" +
               "# Extent description\n" +
               $"RW {CapacitySectors} SPARSE \"{name}\"\n" +
               "\n" +
               "# The Disk Data Base\n" +
               "#DDB\n" +
               "\n" +
               "ddb.virtualHWVersion = \"4\"\n" +
               $"ddb.geometry.cylinders = \"{cylinders}\"\n" +
               "ddb.geometry.heads = \"16\"\n" +
               "ddb.geometry.sectors = \"63\"\n" +
               "ddb.adapterType = \"ide\"\n" +
               $"ddb.uuid.image = \"{VhdxLayout.DeriveGuid(identity, "BackupFuse.Vmdk/v1/ImageUuid"):D}\"\n";
    }

    /// <summary>
    /// Computes the bytes of the directories, the tables and the padding in [<see cref="RewritableLength"/>,
    /// <see cref="DataOffset"/>) from file offset <paramref name="offset"/> on.
    /// </summary>
    public void ReadTables(long offset, Span<byte> destination)
    {
        if (offset < RewritableLength || offset + destination.Length > DataOffset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{destination.Length} is not in the tables area");
        }

        Span<byte> entry = stackalloc byte[4];
        while (!destination.IsEmpty)
        {
            long sector = offset / SectorSize;
            var (start, end, kind) = Area(sector);
            long areaEnd = end * SectorSize;
            int n = (int)Math.Min(destination.Length, areaEnd - offset);
            var piece = destination[..n];
            if (kind == AreaKind.Padding)
            {
                piece.Clear();
            }
            else
            {
                long within = offset - (start * SectorSize);
                long index = within / 4;
                int skip = (int)(within % 4);
                while (!piece.IsEmpty)
                {
                    uint value = kind switch
                    {
                        AreaKind.Directory => DirectoryEntry(index, redundant: false),
                        AreaKind.RedundantDirectory => DirectoryEntry(index, redundant: true),
                        _ => TableEntry(index),
                    };
                    BinaryPrimitives.WriteUInt32LittleEndian(entry, value);
                    int m = Math.Min(4 - skip, piece.Length);
                    entry.Slice(skip, m).CopyTo(piece);
                    piece = piece[m..];
                    skip = 0;
                    index++;
                }
            }

            destination = destination[n..];
            offset += n;
        }
    }

    private (long Start, long End, AreaKind Kind) Area(long sector)
    {
        if (sector < RedundantTablesSectors)
        {
            return (RgdOffsetSectors, RedundantTablesSectors, AreaKind.RedundantDirectory);
        }

        if (sector < GdOffsetSectors)
        {
            return (RedundantTablesSectors, GdOffsetSectors, AreaKind.Tables);
        }

        if (sector < TablesSectors)
        {
            return (GdOffsetSectors, TablesSectors, AreaKind.Directory);
        }

        long tablesEnd = TablesSectors + (Tables * TableSectors);
        return sector < tablesEnd ? (TablesSectors, tablesEnd, AreaKind.Tables) : (tablesEnd, OverHeadSectors, AreaKind.Padding);
    }

    private enum AreaKind
    {
        RedundantDirectory,
        Directory,
        Tables,
        Padding,
    }
}
