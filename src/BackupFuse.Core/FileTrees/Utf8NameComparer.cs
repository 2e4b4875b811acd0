using System.Text;

namespace BackupFuse.Core.FileTrees;

/// <summary>Orders names by the ordinal order of their UTF-8 bytes: the order of children in an <see cref="IFileTree"/>.</summary>
public sealed class Utf8NameComparer : IComparer<string>
{
    /// <summary>The one instance.</summary>
    public static readonly Utf8NameComparer Instance = new();

    private Utf8NameComparer()
    {
    }

    /// <inheritdoc/>
    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x == null || y == null)
        {
            return x == null ? -1 : 1;
        }

        // UTF-16 ordinal order equals UTF-8 byte order except where surrogates meet U+E000..U+FFFF: compare scalars.
        var a = x.EnumerateRunes().GetEnumerator();
        var b = y.EnumerateRunes().GetEnumerator();
        while (true)
        {
            bool hasA = a.MoveNext(), hasB = b.MoveNext();
            if (!hasA || !hasB)
            {
                return hasA.CompareTo(hasB);
            }

            int c = a.Current.Value.CompareTo(b.Current.Value);
            if (c != 0)
            {
                return c;
            }
        }
    }

    /// <summary>Whether <paramref name="name"/> may be an entry name: not empty, not "." or "..", no '/' or NUL, valid UTF-16.</summary>
    public static bool IsValidName(string name) =>
        name.Length > 0 && name != "." && name != ".." && name.AsSpan().IndexOfAny('/', '\0') < 0 && Encoding.UTF8.GetByteCount(name) > 0 && !HasLoneSurrogate(name);

    private static bool HasLoneSurrogate(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return true;
            }
        }

        return false;
    }
}
