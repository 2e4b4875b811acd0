using System.Text;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - Every FAT directory entry has an 8.3 short name, unique in its directory; a long name that is not exactly its
//   own short name also gets LFN entries. A name whose upper-case form is a valid 8.3 name (e.g. "readme.txt") keeps
//   that form as its short name with no tail ("README.TXT", like Windows); whether an entry needs LFN entries is
//   thus a property of its name alone, so a directory's size is known without generating its short names.
// - The others get the basis name of fatgen103 (upper case, characters 8.3 cannot hold -> '_', spaces and leading
//   periods stripped, up to 8 characters before the first period, up to 3 after the last) with a numeric tail:
//   "~1".."~9", then, like Windows, the first two basis characters + 4 hex digits of a hash of the long name + "~1",
//   probing the next hash value on a collision. A tail never takes a name an 8.3-shaped long name of the same
//   directory stands for (that would make lookups ambiguous).
// - Deterministic: names are assigned in the directory's order. Only ASCII goes into short names (no OEM code page).

/// <summary>Assigns 8.3 short names to the entries of one directory.</summary>
public static class FatShortNames
{
    /// <summary>The 11 bytes of a short name: 8 base + 3 extension, space padded.</summary>
    public const int Length = 11;

    /// <summary>Whether <paramref name="name"/> must be stored with LFN entries (it is not exactly an 8.3 name).</summary>
    public static bool NeedsLongName(string name) => !IsShortForm(name);

    /// <summary>
    /// The short names (11 characters each) of <paramref name="longNames"/>, one directory's stored names in order,
    /// unique case-insensitively (as <see cref="FileTrees.FatLongNames.Map"/> returns them).
    /// </summary>
    public static string[] Assign(IReadOnlyList<string> longNames)
    {
        ArgumentNullException.ThrowIfNull(longNames);
        var result = new string[longNames.Count];
        var taken = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < longNames.Count; i++)
        {
            string upper = FrozenUpperCase.ToUpper(longNames[i]);
            if (IsShortForm(upper) && taken.Add(Pack(upper)))
            {
                result[i] = Pack(upper);
            }
        }

        for (int i = 0; i < longNames.Count; i++)
        {
            result[i] ??= WithTail(longNames[i], taken);
        }

        return result;
    }

    /// <summary>The checksum LFN entries carry of their short name (fatgen103).</summary>
    public static byte Checksum(ReadOnlySpan<byte> shortName)
    {
        byte sum = 0;
        for (int i = 0; i < Length; i++)
        {
            sum = (byte)((((sum & 1) != 0) ? 0x80 : 0) + (sum >> 1) + shortName[i]);
        }

        return sum;
    }

    /// <summary>Whether <paramref name="c"/> may appear in a short name (ASCII only, upper case).</summary>
    internal static bool IsShortChar(char c) =>
        c is (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '$' or '%' or '\'' or '-' or '_' or '@' or '~' or '`' or '!' or '(' or ')' or '{' or '}' or '^' or '#' or '&';

    /// <summary>Whether <paramref name="name"/> is exactly a valid 8.3 name: 1-8 characters, optionally '.' and 1-3.</summary>
    private static bool IsShortForm(string name)
    {
        int dot = name.IndexOf('.', StringComparison.Ordinal);
        string stem = dot < 0 ? name : name[..dot];
        string ext = dot < 0 ? string.Empty : name[(dot + 1)..];
        return stem.Length is >= 1 and <= 8 && (dot < 0 || ext.Length is >= 1 and <= 3)
            && stem.All(IsShortChar) && ext.All(IsShortChar);
    }

    /// <summary>The 11-character form of a valid 8.3 name.</summary>
    private static string Pack(string name)
    {
        int dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? name.PadRight(Length) : name[..dot].PadRight(8) + name[(dot + 1)..].PadRight(3);
    }

    private static string WithTail(string longName, HashSet<string> taken)
    {
        var (stem, ext) = Basis(longName);
        for (int n = 1; n <= 9; n++)
        {
            string tail = "~" + (char)('0' + n);
            string candidate = stem[..Math.Min(stem.Length, 8 - tail.Length)] + tail;
            if (taken.Add(candidate.PadRight(8) + ext))
            {
                return candidate.PadRight(8) + ext;
            }
        }

        // FNV-1a over the UTF-16 units, folded to 16 bits: stable across runs and platforms.
        uint h = 2166136261;
        foreach (char c in longName)
        {
            h = (h ^ c) * 16777619;
        }

        string prefix = stem[..Math.Min(stem.Length, 2)];
        for (int probe = 0; ; probe++)
        {
            uint v = ((h >> 16) ^ h) + (uint)probe;
            for (int n = 1; n <= 9; n++)
            {
                string candidate = prefix + ((ushort)v).ToString("X4", System.Globalization.CultureInfo.InvariantCulture) + "~" + (char)('0' + n);
                if (taken.Add(candidate.PadRight(8) + ext))
                {
                    return candidate.PadRight(8) + ext;
                }
            }
        }
    }

    /// <summary>The basis name (fatgen103): stem of up to 8 characters, extension padded to 3.</summary>
    private static (string Stem, string Ext) Basis(string longName)
    {
        var chars = new StringBuilder(longName.Length);
        foreach (char raw in FrozenUpperCase.ToUpper(longName))
        {
            if (raw == ' ')
            {
                continue;
            }

            chars.Append(raw == '.' || IsShortChar(raw) ? raw : '_');
        }

        string s = chars.ToString().TrimStart('.');
        int first = s.IndexOf('.', StringComparison.Ordinal);
        int last = s.LastIndexOf('.');
        string stem = first < 0 ? s : s[..first];
        string ext = last < 0 ? string.Empty : s[(last + 1)..];
        stem = stem.Length == 0 ? "_" : stem[..Math.Min(stem.Length, 8)];
        ext = ext[..Math.Min(ext.Length, 3)];
        return (stem, ext.PadRight(3));
    }
}
