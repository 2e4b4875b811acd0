using System.Buffers.Binary;
using System.Text;

namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - The 32-byte records of a FAT directory: the 8.3 entry (fatgen103 "FAT 32 Byte Directory Entry Structure") and
//   the long-name entries before it (13 UTF-16 units each, last one first with 0x40 in its ordinal, the name
//   terminated by 0x0000 unless it fills the last entry exactly, then padded with 0xFFFF; each carries the checksum
//   of the short name). Pure functions over spans.

/// <summary>Writes FAT directory entries.</summary>
public static class FatDirectoryEntry
{
    /// <summary>Bytes per directory entry.</summary>
    public const int Size = 32;

    /// <summary>Attribute: read-only.</summary>
    public const byte ReadOnly = 0x01;

    /// <summary>Attribute: volume label.</summary>
    public const byte VolumeId = 0x08;

    /// <summary>Attribute: directory.</summary>
    public const byte Directory = 0x10;

    /// <summary>Attribute: archive (set on files, as file systems do on creation).</summary>
    public const byte Archive = 0x20;

    /// <summary>Attribute combination marking a long-name entry.</summary>
    public const byte LongName = 0x0F;

    /// <summary>UTF-16 units per long-name entry.</summary>
    public const int CharsPerLongEntry = 13;

    private static readonly int[] LongNameOffsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

    /// <summary>How many long-name entries <paramref name="name"/> takes.</summary>
    public static int LongEntryCount(string name) => (name.Length + CharsPerLongEntry - 1) / CharsPerLongEntry;

    /// <summary>Writes the 8.3 entry: 11-character <paramref name="shortName"/>, attributes, first cluster, size, times.</summary>
    public static void WriteShort(Span<byte> entry, string shortName, byte attributes, uint firstCluster, uint size, long modifiedUnixNs, long accessedUnixNs)
    {
        ArgumentNullException.ThrowIfNull(shortName);
        entry[..Size].Clear();
        Encoding.ASCII.GetBytes(shortName.AsSpan(0, FatShortNames.Length), entry);
        entry[11] = attributes;
        var (date, time, cs) = FatDateTime.Encode(modifiedUnixNs);
        entry[13] = cs;
        BinaryPrimitives.WriteUInt16LittleEndian(entry[14..], time);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[16..], date);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[18..], FatDateTime.Encode(accessedUnixNs).Date);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[20..], (ushort)(firstCluster >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(entry[22..], time);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[24..], date);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[26..], (ushort)firstCluster);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[28..], size);
    }

    /// <summary>Writes the <see cref="LongEntryCount"/> long-name entries of <paramref name="name"/>, in on-disk order.</summary>
    public static void WriteLong(Span<byte> entries, string name, byte checksum)
    {
        ArgumentNullException.ThrowIfNull(name);
        int count = LongEntryCount(name);
        for (int k = 0; k < count; k++)
        {
            int ordinal = count - k; // on disk the last part comes first
            var e = entries.Slice(k * Size, Size);
            e.Clear();
            e[0] = (byte)(ordinal | (k == 0 ? 0x40 : 0));
            e[11] = LongName;
            e[13] = checksum;
            int start = (ordinal - 1) * CharsPerLongEntry;
            for (int j = 0; j < CharsPerLongEntry; j++)
            {
                int at = start + j;
                ushort unit = at < name.Length ? name[at] : at == name.Length ? (ushort)0 : (ushort)0xFFFF;
                BinaryPrimitives.WriteUInt16LittleEndian(e[LongNameOffsets[j]..], unit);
            }
        }
    }
}
