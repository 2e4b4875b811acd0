using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - The up-case table written to the volume: FrozenUpperCase (the same mapping FatLongNames.Fold uses to keep names
//   unique, so the stored names never collide under the volume's own table),
//   written in the spec's compressed form: runs of characters that map to themselves become 0xFFFF + run length.
// - Compressed, not the full 128 KiB table, on purpose: both are valid, but fsck.exfat (exfatprogs up to at least
//   1.2.x) passes the table size to a checksum routine taking an unsigned short, so a 131072-byte table is checked
//   as empty and reported "corrupted upcase table 0". The compressed table is a few KiB.
// - Part of the layout, so it is frozen data (FrozenUpperCase), not the runtime's casing tables, which a .NET update
//   could change under an existing changes file. Built once; thread-safe.

/// <summary>The exFAT up-case table this project writes, its checksum and the mapping it defines.</summary>
internal static class ExFatUpcaseTable
{
    private static readonly byte[] Table = Compress();

    /// <summary>The table's bytes as stored.</summary>
    public static ReadOnlySpan<byte> Bytes => Table;

    /// <summary>Size of the stored table in bytes.</summary>
    public static int Length => Table.Length;

    /// <summary>The TableChecksum of the up-case directory entry.</summary>
    public static uint Checksum { get; } = ComputeChecksum(Table);

    /// <summary>The up-cased form of <paramref name="c"/> under the table.</summary>
    public static char ToUpper(char c) => FrozenUpperCase.ToUpper(c);

    private static byte[] Compress()
    {
        var units = new List<ushort>();
        for (int c = 0; c < 65536;)
        {
            int run = 0;
            while (c + run < 65536 && FrozenUpperCase.ToUpper((char)(c + run)) == c + run && run < 0xFFFF)
            {
                run++;
            }

            // A run pays off from 3 characters; 0xFFFF itself can only be written as a run (it is the escape).
            if (run >= 3 || (run > 0 && c + run - 1 == 0xFFFF))
            {
                units.Add(0xFFFF);
                units.Add((ushort)run);
                c += run;
            }
            else
            {
                units.Add(FrozenUpperCase.ToUpper((char)c));
                c++;
            }
        }

        var bytes = new byte[units.Count * 2];
        for (int i = 0; i < units.Count; i++)
        {
            bytes[2 * i] = (byte)units[i];
            bytes[(2 * i) + 1] = (byte)(units[i] >> 8);
        }

        return bytes;
    }

    private static uint ComputeChecksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        foreach (byte b in data)
        {
            sum = ((sum & 1) != 0 ? 0x80000000u : 0) + (sum >> 1) + b;
        }

        return sum;
    }
}
