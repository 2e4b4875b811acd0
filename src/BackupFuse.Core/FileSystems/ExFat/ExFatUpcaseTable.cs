namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - The up-case table written to the volume, stored uncompressed (65536 UTF-16 code units, 128 KiB): every reader
//   (compressed-table aware or not) takes it as is. It is built from char.ToUpperInvariant, the same mapping
//   FatLongNames.Fold uses to keep names unique, so the names the volume holds never collide under its own table.
//   (The runtime's casing data is part of the layout: a .NET with another Unicode version could change a few
//   entries; the build pins InvariantGlobalization, so ICU on the host plays no part.)
// - Built once, immutable, thread-safe.

/// <summary>The exFAT up-case table this project writes, its checksum and the mapping it defines.</summary>
internal static class ExFatUpcaseTable
{
    /// <summary>Size of the table in bytes.</summary>
    public const int Length = 65536 * 2;

    private static readonly byte[] Table = Build();

    /// <summary>The table's bytes.</summary>
    public static ReadOnlySpan<byte> Bytes => Table;

    /// <summary>The TableChecksum of the up-case directory entry.</summary>
    public static uint Checksum { get; } = ComputeChecksum(Table);

    /// <summary>The up-cased form of <paramref name="c"/> under the table.</summary>
    public static char ToUpper(char c) => (char)(Table[c * 2] | (Table[(c * 2) + 1] << 8));

    private static byte[] Build()
    {
        var t = new byte[Length];
        for (int c = 0; c < 65536; c++)
        {
            char u = char.ToUpperInvariant((char)c);
            t[c * 2] = (byte)u;
            t[(c * 2) + 1] = (byte)(u >> 8);
        }

        return t;
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
