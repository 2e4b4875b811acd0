using System.Buffers.Binary;
using System.Text;

namespace BackupFuse.Core.Partitions;

// Design notes:
// - Writes the GPT structures of UEFI 2.x chapter 5 for a disk whose geometry is already decided: 128 entries of 128
//   bytes (32 sectors), primary header at LBA 1 and entries at LBA 2, backup entries in the 32 sectors before the last
//   one and the backup header in the last. First usable LBA 34, last usable LBA = last - 33.
// - GUIDs are written in the mixed-endian layout GPT uses, which is exactly Guid.TryWriteBytes' layout.
// - Pure functions of their input: the same disk gives the same bytes on every run (deterministic GUIDs come from
//   the caller).

/// <summary>Builds the primary and backup GPT header and entry array.</summary>
public static class GptWriter
{
    /// <summary>Entries in the array.</summary>
    public const int EntryCount = 128;

    /// <summary>Bytes per entry.</summary>
    public const int EntrySize = 128;

    /// <summary>Size of the header fields covered by the header CRC.</summary>
    public const int HeaderSize = 92;

    /// <summary>Sectors of the entry array.</summary>
    public const int EntrySectors = EntryCount * EntrySize / PartitionedDiskLayout.SectorSize;

    /// <summary>Sectors the GPT needs at the start (MBR + header + entries) and at the end (entries + header) of the disk.</summary>
    public const long FirstUsableLba = 2 + EntrySectors;

    /// <summary>The entry array for <paramref name="partitions"/> (type, unique GUID, first and last LBA, name).</summary>
    public static byte[] Entries(IReadOnlyList<(PartitionSpec Spec, long FirstLba, long LastLba)> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (partitions.Count > EntryCount)
        {
            throw new InvalidDataException($"a GPT holds at most {EntryCount} partitions, not {partitions.Count}");
        }

        byte[] array = new byte[EntryCount * EntrySize];
        for (int i = 0; i < partitions.Count; i++)
        {
            var (spec, first, last) = partitions[i];
            var e = array.AsSpan(i * EntrySize, EntrySize);
            spec.TypeGuid.TryWriteBytes(e);
            spec.UniqueGuid.TryWriteBytes(e[16..]);
            BinaryPrimitives.WriteInt64LittleEndian(e[32..], first);
            BinaryPrimitives.WriteInt64LittleEndian(e[40..], last);
            string name = spec.Name.Length > 36 ? spec.Name[..36] : spec.Name;
            Encoding.Unicode.GetBytes(name, e[56..]);
        }

        return array;
    }

    /// <summary>A GPT header sector: primary when <paramref name="myLba"/> is 1, backup when it is the last LBA.</summary>
    public static byte[] Header(long myLba, long alternateLba, long lastLba, long entriesLba, Guid diskGuid, ReadOnlySpan<byte> entries)
    {
        byte[] sector = new byte[PartitionedDiskLayout.SectorSize];
        var h = sector.AsSpan();
        "EFI PART"u8.CopyTo(h);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], 0x00010000);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], HeaderSize);
        BinaryPrimitives.WriteInt64LittleEndian(h[24..], myLba);
        BinaryPrimitives.WriteInt64LittleEndian(h[32..], alternateLba);
        BinaryPrimitives.WriteInt64LittleEndian(h[40..], FirstUsableLba);
        BinaryPrimitives.WriteInt64LittleEndian(h[48..], lastLba - 1 - EntrySectors);
        diskGuid.TryWriteBytes(h[56..]);
        BinaryPrimitives.WriteInt64LittleEndian(h[72..], entriesLba);
        BinaryPrimitives.WriteUInt32LittleEndian(h[80..], EntryCount);
        BinaryPrimitives.WriteUInt32LittleEndian(h[84..], EntrySize);
        BinaryPrimitives.WriteUInt32LittleEndian(h[88..], Crc32.Compute(entries));
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], Crc32.Compute(h[..HeaderSize]));
        return sector;
    }
}
