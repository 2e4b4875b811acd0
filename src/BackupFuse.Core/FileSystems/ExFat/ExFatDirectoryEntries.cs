using System.Buffers.Binary;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - Encodes the 32-byte exFAT directory entries this project writes: the root's volume label, allocation bitmap and
//   up-case table entries, and per file or directory an entry set (file, stream extension, 1..17 file name entries)
//   with its SetChecksum and the NameHash over the up-cased name. Pure functions, thread-safe.
// - Times: mtime is both LastModified and Create (the tree keeps no birth time), atime is LastAccessed; all in UTC
//   (UtcOffset field valid, offset 0), with the 10 ms increment for modified/created (LastAccessed has none, so it
//   keeps 2-second granularity). Times outside exFAT's 1980..2107 are clamped to the nearest end.
// - Attributes: Directory for directories, Archive for files, ReadOnly when the mode lacks the owner write bit.

/// <summary>Writes exFAT directory entries.</summary>
internal static class ExFatDirectoryEntries
{
    /// <summary>Bytes in one directory entry.</summary>
    public const int EntrySize = 32;

    /// <summary>UTF-16 units of a name one file name entry holds.</summary>
    public const int NameCharsPerEntry = 15;

    /// <summary>The largest entry set: file + stream extension + 17 name entries (255 units).</summary>
    public const int MaxSetSize = EntrySize * (2 + 17);

    private static readonly DateTime Earliest = new(1980, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime Latest = new(2107, 12, 31, 23, 59, 59, 990, DateTimeKind.Utc);

    /// <summary>Bytes of the entry set of a name of <paramref name="nameLength"/> UTF-16 units.</summary>
    public static int SetSize(int nameLength) => EntrySize * (2 + ((nameLength + NameCharsPerEntry - 1) / NameCharsPerEntry));

    /// <summary>Writes the volume label entry (type 0x83; 0x03 "not in use" when the label is empty).</summary>
    public static void WriteVolumeLabel(Span<byte> d, string label)
    {
        d[..EntrySize].Clear();
        d[0] = (byte)(label.Length == 0 ? 0x03 : 0x83);
        d[1] = (byte)label.Length;
        for (int i = 0; i < label.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(d[(2 + (2 * i))..], label[i]);
        }
    }

    /// <summary>Writes the allocation bitmap entry (type 0x81, first bitmap).</summary>
    public static void WriteBitmap(Span<byte> d, uint firstCluster, ulong length)
    {
        d[..EntrySize].Clear();
        d[0] = 0x81;
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], firstCluster);
        BinaryPrimitives.WriteUInt64LittleEndian(d[24..], length);
    }

    /// <summary>Writes the up-case table entry (type 0x82).</summary>
    public static void WriteUpcase(Span<byte> d, uint checksum, uint firstCluster, ulong length)
    {
        d[..EntrySize].Clear();
        d[0] = 0x82;
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], checksum);
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], firstCluster);
        BinaryPrimitives.WriteUInt64LittleEndian(d[24..], length);
    }

    /// <summary>
    /// Writes the entry set of <paramref name="entry"/> stored as <paramref name="name"/>, whose content is
    /// <paramref name="dataLength"/> bytes in one contiguous run from <paramref name="firstCluster"/> (0 when empty).
    /// Returns the set's size.
    /// </summary>
    public static int WriteSet(Span<byte> d, in FileTreeEntry entry, string name, uint firstCluster, ulong dataLength)
    {
        int size = SetSize(name.Length);
        var set = d[..size];
        set.Clear();
        bool directory = entry.Kind == FileTreeEntryKind.Directory;

        // File directory entry.
        set[0] = 0x85;
        set[1] = (byte)((size / EntrySize) - 1);
        ushort attributes = (ushort)(directory ? 0x10 : 0x20);
        if ((entry.Mode & 0x80) == 0)
        {
            attributes |= 0x01;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(set[4..], attributes);
        uint modified = Timestamp(entry.ModifiedUnixNs, out byte modified10ms);
        uint accessed = Timestamp(entry.AccessedUnixNs, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(set[8..], modified);
        BinaryPrimitives.WriteUInt32LittleEndian(set[12..], modified);
        BinaryPrimitives.WriteUInt32LittleEndian(set[16..], accessed);
        set[20] = modified10ms;
        set[21] = modified10ms;
        set[22] = 0x80; // UTC offsets: valid, +0
        set[23] = 0x80;
        set[24] = 0x80;

        // Stream extension: AllocationPossible, NoFatChain when there are clusters (they are contiguous).
        var stream = set[EntrySize..];
        stream[0] = 0xC0;
        stream[1] = (byte)(firstCluster != 0 ? 0x03 : 0x01);
        stream[3] = (byte)name.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(stream[4..], NameHash(name));
        BinaryPrimitives.WriteUInt64LittleEndian(stream[8..], dataLength);
        BinaryPrimitives.WriteUInt32LittleEndian(stream[20..], firstCluster);
        BinaryPrimitives.WriteUInt64LittleEndian(stream[24..], dataLength);

        // File name entries.
        for (int i = 0; i < name.Length; i++)
        {
            int at = (EntrySize * (2 + (i / NameCharsPerEntry))) + 2 + (2 * (i % NameCharsPerEntry));
            BinaryPrimitives.WriteUInt16LittleEndian(set[at..], name[i]);
        }

        for (int e = 2; e < size / EntrySize; e++)
        {
            set[e * EntrySize] = 0xC1;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(set[2..], SetChecksum(set));
        return size;
    }

    /// <summary>The SetChecksum over an entry set (bytes 2 and 3 of the first entry excluded).</summary>
    public static ushort SetChecksum(ReadOnlySpan<byte> set)
    {
        ushort sum = 0;
        for (int i = 0; i < set.Length; i++)
        {
            if (i is 2 or 3)
            {
                continue;
            }

            sum = (ushort)(((sum & 1) != 0 ? 0x8000 : 0) + (sum >> 1) + set[i]);
        }

        return sum;
    }

    /// <summary>The NameHash over <paramref name="name"/> up-cased with the volume's table.</summary>
    public static ushort NameHash(string name)
    {
        ushort hash = 0;
        foreach (char c in name)
        {
            char u = ExFatUpcaseTable.ToUpper(c);
            hash = (ushort)(((hash & 1) != 0 ? 0x8000 : 0) + (hash >> 1) + (byte)u);
            hash = (ushort)(((hash & 1) != 0 ? 0x8000 : 0) + (hash >> 1) + (byte)(u >> 8));
        }

        return hash;
    }

    /// <summary>The exFAT timestamp of <paramref name="unixNs"/> (UTC, clamped to 1980..2107) and its 10 ms increment.</summary>
    public static uint Timestamp(long unixNs, out byte tenMs)
    {
        long ticks = unixNs / 100;
        DateTime t = ticks <= (Earliest.Ticks - DateTime.UnixEpoch.Ticks) ? Earliest
            : ticks >= (Latest.Ticks - DateTime.UnixEpoch.Ticks) ? Latest
            : DateTime.UnixEpoch.AddTicks(ticks);
        tenMs = (byte)(((t.Second % 2) * 100) + (t.Millisecond / 10));
        return (uint)(((t.Year - 1980) << 25) | (t.Month << 21) | (t.Day << 16) | (t.Hour << 11) | (t.Minute << 5) | (t.Second / 2));
    }
}
