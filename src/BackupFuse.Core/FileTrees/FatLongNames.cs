using System.Runtime.CompilerServices;
using System.Text;

namespace BackupFuse.Core.FileTrees;

// Design notes:
// - The names FAT long-file-name entries and exFAT can hold: at most 255 UTF-16 code units, none of the characters
//   U+0000..U+001F " * / : < > ? \ |, unique within a directory when compared case-insensitively, and no trailing
//   '.' or ' ' (Windows strips them and Linux's exfat driver ignores trailing dots on lookup, so such a name could not
//   be opened). The target file systems compare with their up-case table: Fold is FrozenUpperCase per UTF-16 unit,
//   the table the exFAT volume writes and the FAT32 short names use.
// - Deterministic: a directory's children are mapped in their tree order (UTF-8 ordinal); a name that is already
//   valid and unique is kept as is; otherwise forbidden characters become '_', an over-long name is cut and gets
//   "~" + 8 hex digits of the SHA-256 of the original (extension kept when it fits), and a case collision gets
//   "~2", "~3", ... before the extension. Every change is reported, never silent.

/// <summary>Maps the names of one directory's children to names FAT (long names) and exFAT can hold.</summary>
public static class FatLongNames
{
    /// <summary>The longest name, in UTF-16 code units.</summary>
    public const int MaxLength = 255;

    // The characters no FAT long name or exFAT name may hold: U+0000..U+001F " * / : < > ? \\ | (one set for IsForbidden and IsValid's search).
    private static readonly System.Buffers.SearchValues<char> Forbidden = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(c => (char)c), '"', '*', '/', ':', '<', '>', '?', '\\', '|']);

    /// <summary>Whether <paramref name="c"/> cannot appear in a FAT long name or an exFAT name.</summary>
    public static bool IsForbidden(char c) => Forbidden.Contains(c);

    /// <summary>
    /// The stored names of <paramref name="names"/> (one directory's children, in tree order): same count and order,
    /// unique case-insensitively. <paramref name="changed"/>[i] is true where the stored name differs from the original.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    public static string[] Map(IReadOnlyList<string> names, out bool[] changed)
    {
        var result = new string[names.Count];
        changed = new bool[names.Count];
        var taken = new HashSet<string>(FoldedComparer.Instance); // compares Fold(a) with Fold(b) without making either
        var valid = new bool[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            valid[i] = IsValid(names[i]);
        }

        // Valid names keep their spelling; the first of each case-insensitive group wins.
        for (int i = 0; i < names.Count; i++)
        {
            if (valid[i] && taken.Add(names[i]))
            {
                result[i] = names[i];
            }
        }

        for (int i = 0; i < names.Count; i++)
        {
            if (result[i] != null)
            {
                continue;
            }

            string baseName = valid[i] ? names[i] : Clean(names[i]);
            string candidate = baseName;
            for (int n = 2; !taken.Add(candidate); n++)
            {
                candidate = WithSuffix(baseName, "~" + n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            result[i] = candidate;
            changed[i] = true;
        }

        return result;
    }

    /// <summary>The case-insensitive key two names collide on.</summary>
    public static string Fold(string name) => FrozenUpperCase.ToUpper(name);

    private static bool IsValid(string name) =>
        name.Length <= MaxLength && name.AsSpan().IndexOfAny(Forbidden) < 0 && name[^1] != '.' && name[^1] != ' ';

    private static string Clean(string name)
    {
        var chars = name.Select(c => IsForbidden(c) ? '_' : c).ToArray();
        if (chars[^1] is '.' or ' ')
        {
            chars[^1] = '_';
        }

        string cleaned = new(chars);
        if (cleaned.Length <= MaxLength)
        {
            return cleaned;
        }

        string hash = "~" + Convert.ToHexString(IdentityHash.HashData(Encoding.UTF8.GetBytes(name)), 0, 4);
        return WithSuffix(cleaned, hash);
    }

    /// <summary><paramref name="name"/> with <paramref name="suffix"/> before its extension, cut to fit <see cref="MaxLength"/>.</summary>
    private static string WithSuffix(string name, string suffix)
    {
        int dot = name.LastIndexOf('.');
        string ext = dot > 0 && name.Length - dot <= 16 ? name[dot..] : string.Empty;
        string stem = name[..(name.Length - ext.Length)];
        int room = MaxLength - suffix.Length - ext.Length;
        if (stem.Length > room)
        {
            stem = stem[..room];
            if (char.IsHighSurrogate(stem[^1]))
            {
                stem = stem[..^1];
            }
        }

        return stem + suffix + ext;
    }

    /// <summary>Equality of <see cref="Fold"/>ed names, per UTF-16 unit, without allocating the folded strings.</summary>
    private sealed class FoldedComparer : IEqualityComparer<string>
    {
        public static readonly FoldedComparer Instance = new();

        public bool Equals(string? x, string? y)
        {
            if (x == null || y == null || x.Length != y.Length)
            {
                return x == null && y == null;
            }

            for (int i = 0; i < x.Length; i++)
            {
                if (x[i] != y[i] && FrozenUpperCase.ToUpper(x[i]) != FrozenUpperCase.ToUpper(y[i]))
                {
                    return false;
                }
            }

            return true;
        }

        public int GetHashCode(string obj)
        {
            // The runtime's randomized string hash of the folded name: a catalog cannot be crafted to collide.
            Span<char> folded = obj.Length <= 512 ? stackalloc char[obj.Length] : new char[obj.Length];
            for (int i = 0; i < obj.Length; i++)
            {
                folded[i] = FrozenUpperCase.ToUpper(obj[i]);
            }

            return string.GetHashCode(folded);
        }
    }
}
