namespace BackupFuse.Core.FileTrees;

// Design notes:
// - The one upper-case mapping every synthesized file system uses: FatLongNames.Fold (which names collide), the FAT
//   8.3 short names, and the exFAT up-case table written to the volume. Part of the on-disk layout: a plugin's bytes
//   must not change under an existing changes file, so the mapping is frozen here as data instead of following the
//   runtime's Unicode casing tables, which a .NET update may change.
// - The data is char.ToUpperInvariant of .NET 10.0 (InvariantGlobalization: the runtime's own simple case mapping) for every
//   UTF-16 code unit, 1193 of which change, stored as 192 runs (first, count, step, delta): for k in [0, count),
//   first + k * step maps to itself + delta. Every other unit (surrogates included) maps to itself. It was generated
//   once by a throwaway program; FrozenLayoutTests pins its fingerprint so that an edit cannot go unnoticed.
// - Per UTF-16 unit, like FAT's and exFAT's own tables: no multi-character mappings (ß stays ß), and letters outside
//   the BMP (surrogate pairs: Deseret, Osage, Adlam...) are not folded. string.ToUpperInvariant, used before this
//   table, did fold those pairs, so sibling names that differ only by the case of such a letter were renamed before
//   and now both keep their names (as the exFAT up-case table, per unit, tells the guest's driver they differ); no
//   other layout changed. Immutable; thread-safe.

/// <summary>The frozen per-UTF-16-unit upper-case mapping of the synthesized FAT and exFAT volumes.</summary>
public static class FrozenUpperCase
{
    private static readonly int[] Runs =
    [
        0x0061, 26, 1, -32, 0x00B5, 1, 1, 743, 0x00E0, 23, 1, -32, 0x00F8, 7, 1, -32,
        0x00FF, 1, 1, 121, 0x0101, 24, 2, -1, 0x0133, 3, 2, -1, 0x013A, 8, 2, -1,
        0x014B, 23, 2, -1, 0x017A, 3, 2, -1, 0x0180, 1, 1, 195, 0x0183, 2, 2, -1,
        0x0188, 1, 1, -1, 0x018C, 1, 1, -1, 0x0192, 1, 1, -1, 0x0195, 1, 1, 97,
        0x0199, 1, 1, -1, 0x019A, 1, 1, 163, 0x019B, 1, 1, 42561, 0x019E, 1, 1, 130,
        0x01A1, 3, 2, -1, 0x01A8, 1, 1, -1, 0x01AD, 1, 1, -1, 0x01B0, 1, 1, -1,
        0x01B4, 2, 2, -1, 0x01B9, 1, 1, -1, 0x01BD, 1, 1, -1, 0x01BF, 1, 1, 56,
        0x01C5, 1, 1, -1, 0x01C6, 1, 1, -2, 0x01C8, 1, 1, -1, 0x01C9, 1, 1, -2,
        0x01CB, 1, 1, -1, 0x01CC, 1, 1, -2, 0x01CE, 8, 2, -1, 0x01DD, 1, 1, -79,
        0x01DF, 9, 2, -1, 0x01F2, 1, 1, -1, 0x01F3, 1, 1, -2, 0x01F5, 1, 1, -1,
        0x01F9, 20, 2, -1, 0x0223, 9, 2, -1, 0x023C, 1, 1, -1, 0x023F, 2, 1, 10815,
        0x0242, 1, 1, -1, 0x0247, 5, 2, -1, 0x0250, 1, 1, 10783, 0x0251, 1, 1, 10780,
        0x0252, 1, 1, 10782, 0x0253, 1, 1, -210, 0x0254, 1, 1, -206, 0x0256, 2, 1, -205,
        0x0259, 1, 1, -202, 0x025B, 1, 1, -203, 0x025C, 1, 1, 42319, 0x0260, 1, 1, -205,
        0x0261, 1, 1, 42315, 0x0263, 1, 1, -207, 0x0264, 1, 1, 42343, 0x0265, 1, 1, 42280,
        0x0266, 1, 1, 42308, 0x0268, 1, 1, -209, 0x0269, 1, 1, -211, 0x026A, 1, 1, 42308,
        0x026B, 1, 1, 10743, 0x026C, 1, 1, 42305, 0x026F, 1, 1, -211, 0x0271, 1, 1, 10749,
        0x0272, 1, 1, -213, 0x0275, 1, 1, -214, 0x027D, 1, 1, 10727, 0x0280, 1, 1, -218,
        0x0282, 1, 1, 42307, 0x0283, 1, 1, -218, 0x0287, 1, 1, 42282, 0x0288, 1, 1, -218,
        0x0289, 1, 1, -69, 0x028A, 2, 1, -217, 0x028C, 1, 1, -71, 0x0292, 1, 1, -219,
        0x029D, 1, 1, 42261, 0x029E, 1, 1, 42258, 0x0345, 1, 1, 84, 0x0371, 2, 2, -1,
        0x0377, 1, 1, -1, 0x037B, 3, 1, 130, 0x03AC, 1, 1, -38, 0x03AD, 3, 1, -37,
        0x03B1, 17, 1, -32, 0x03C2, 1, 1, -31, 0x03C3, 9, 1, -32, 0x03CC, 1, 1, -64,
        0x03CD, 2, 1, -63, 0x03D0, 1, 1, -62, 0x03D1, 1, 1, -57, 0x03D5, 1, 1, -47,
        0x03D6, 1, 1, -54, 0x03D7, 1, 1, -8, 0x03D9, 12, 2, -1, 0x03F0, 1, 1, -86,
        0x03F1, 1, 1, -80, 0x03F2, 1, 1, 7, 0x03F3, 1, 1, -116, 0x03F5, 1, 1, -96,
        0x03F8, 1, 1, -1, 0x03FB, 1, 1, -1, 0x0430, 32, 1, -32, 0x0450, 16, 1, -80,
        0x0461, 17, 2, -1, 0x048B, 27, 2, -1, 0x04C2, 7, 2, -1, 0x04CF, 1, 1, -15,
        0x04D1, 48, 2, -1, 0x0561, 38, 1, -48, 0x10D0, 43, 1, 3008, 0x10FD, 3, 1, 3008,
        0x13F8, 6, 1, -8, 0x1C80, 1, 1, -6254, 0x1C81, 1, 1, -6253, 0x1C82, 1, 1, -6244,
        0x1C83, 2, 1, -6242, 0x1C85, 1, 1, -6243, 0x1C86, 1, 1, -6236, 0x1C87, 1, 1, -6181,
        0x1C88, 1, 1, 35266, 0x1C8A, 1, 1, -1, 0x1D79, 1, 1, 35332, 0x1D7D, 1, 1, 3814,
        0x1D8E, 1, 1, 35384, 0x1E01, 75, 2, -1, 0x1E9B, 1, 1, -59, 0x1EA1, 48, 2, -1,
        0x1F00, 8, 1, 8, 0x1F10, 6, 1, 8, 0x1F20, 8, 1, 8, 0x1F30, 8, 1, 8,
        0x1F40, 6, 1, 8, 0x1F51, 4, 2, 8, 0x1F60, 8, 1, 8, 0x1F70, 2, 1, 74,
        0x1F72, 4, 1, 86, 0x1F76, 2, 1, 100, 0x1F78, 2, 1, 128, 0x1F7A, 2, 1, 112,
        0x1F7C, 2, 1, 126, 0x1F80, 8, 1, 8, 0x1F90, 8, 1, 8, 0x1FA0, 8, 1, 8,
        0x1FB0, 2, 1, 8, 0x1FB3, 1, 1, 9, 0x1FBE, 1, 1, -7205, 0x1FC3, 1, 1, 9,
        0x1FD0, 2, 1, 8, 0x1FE0, 2, 1, 8, 0x1FE5, 1, 1, 7, 0x1FF3, 1, 1, 9,
        0x214E, 1, 1, -28, 0x2170, 16, 1, -16, 0x2184, 1, 1, -1, 0x24D0, 26, 1, -26,
        0x2C30, 48, 1, -48, 0x2C61, 1, 1, -1, 0x2C65, 1, 1, -10795, 0x2C66, 1, 1, -10792,
        0x2C68, 3, 2, -1, 0x2C73, 1, 1, -1, 0x2C76, 1, 1, -1, 0x2C81, 50, 2, -1,
        0x2CEC, 2, 2, -1, 0x2CF3, 1, 1, -1, 0x2D00, 38, 1, -7264, 0x2D27, 1, 1, -7264,
        0x2D2D, 1, 1, -7264, 0xA641, 23, 2, -1, 0xA681, 14, 2, -1, 0xA723, 7, 2, -1,
        0xA733, 31, 2, -1, 0xA77A, 2, 2, -1, 0xA77F, 5, 2, -1, 0xA78C, 1, 1, -1,
        0xA791, 2, 2, -1, 0xA794, 1, 1, 48, 0xA797, 10, 2, -1, 0xA7B5, 8, 2, -1,
        0xA7C8, 2, 2, -1, 0xA7CD, 1, 1, -1, 0xA7D1, 1, 1, -1, 0xA7D7, 3, 2, -1,
        0xA7F6, 1, 1, -1, 0xAB53, 1, 1, -928, 0xAB70, 80, 1, -38864, 0xFF41, 26, 1, -32,
    ];

    private static readonly char[] Map = Build();

    /// <summary>The upper-case form of <paramref name="c"/>.</summary>
    public static char ToUpper(char c) => Map[c];

    /// <summary><paramref name="s"/> with every UTF-16 unit upper-cased.</summary>
    public static string ToUpper(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return string.Create(s.Length, s, static (span, source) =>
        {
            for (int i = 0; i < span.Length; i++)
            {
                span[i] = Map[source[i]];
            }
        });
    }

    private static char[] Build()
    {
        var map = new char[65536];
        for (int c = 0; c < map.Length; c++)
        {
            map[c] = (char)c;
        }

        for (int r = 0; r < Runs.Length; r += 4)
        {
            for (int k = 0; k < Runs[r + 1]; k++)
            {
                int c = Runs[r] + (k * Runs[r + 2]);
                map[c] = (char)(c + Runs[r + 3]);
            }
        }

        return map;
    }
}
