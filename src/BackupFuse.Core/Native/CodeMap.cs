namespace BackupFuse.Core.Native;

// Design notes:
// - Translates between the canonical numbers the code is written with (Linux x86_64: Errno's constants, LibC's
//   O_* constants) and a platform's native numbers. Two uses: errno values (one number each way) and open(2) flag
//   words (bit by bit, the access mode in the low two bits copied as is).
// - An identity map (linux-x64) returns its input unchanged, so that path stays byte-for-byte what it was.
// - Errno: a canonical errno the platform lacks becomes EIO (never a number that means something else there); a
//   native errno without a canonical twin becomes EIO as well. Several native values may map to one canonical
//   value (Darwin ENOTSUP 45 and EOPNOTSUPP 102 both mean Linux's EOPNOTSUPP 95); the first pair wins for
//   canonical → native.
// - Flags: a canonical bit the platform lacks (O_DIRECT, O_PATH, O_NOATIME on macOS) is dropped; the caller that
//   needs its effect (F_NOCACHE for O_DIRECT) asks NativeAbi.

/// <summary>A canonical ↔ native number table (errno values or open flag bits).</summary>
public sealed class CodeMap
{
    private readonly (int Canonical, int Native)[] _pairs;
    private readonly int _fallback;

    private CodeMap((int Canonical, int Native)[] pairs, int fallback, bool identity, bool bitwise)
    {
        _pairs = pairs;
        _fallback = fallback;
        IsIdentity = identity;
        IsBitwise = bitwise;
    }

    /// <summary>True when canonical and native numbers are the same.</summary>
    public bool IsIdentity { get; }

    /// <summary>True for a flag-bit table, false for a value table.</summary>
    public bool IsBitwise { get; }

    /// <summary>The (canonical, native) pairs; native 0 in a flag table means "this platform has no such flag".</summary>
    public IReadOnlyList<(int Canonical, int Native)> Pairs => _pairs;

    /// <summary>The identity table.</summary>
    public static CodeMap Identity(bool bitwise) => new([], 0, identity: true, bitwise);

    /// <summary>A value table (errno): unknown values become <paramref name="fallback"/>.</summary>
    public static CodeMap Values((int Canonical, int Native)[] pairs, int fallback) => new(pairs, fallback, identity: false, bitwise: false);

    /// <summary>A bit table (open flags): the low two bits (access mode) are copied, other bits translated or dropped.</summary>
    public static CodeMap Bits((int Canonical, int Native)[] pairs) => new(pairs, 0, identity: false, bitwise: true);

    /// <summary>Canonical → native.</summary>
    public int ToNative(int canonical) => IsIdentity ? canonical : IsBitwise ? TranslateBits(canonical, toNative: true) : TranslateValue(canonical, toNative: true);

    /// <summary>Native → canonical.</summary>
    public int ToCanonical(int native) => IsIdentity ? native : IsBitwise ? TranslateBits(native, toNative: false) : TranslateValue(native, toNative: false);

    private int TranslateValue(int value, bool toNative)
    {
        foreach (var (canonical, native) in _pairs)
        {
            if ((toNative ? canonical : native) == value)
            {
                return toNative ? native : canonical;
            }
        }

        return value == 0 ? 0 : _fallback;
    }

    private int TranslateBits(int value, bool toNative)
    {
        int result = value & 0x3; // O_RDONLY / O_WRONLY / O_RDWR are 0/1/2 everywhere
        foreach (var (canonical, native) in _pairs)
        {
            int from = toNative ? canonical : native;
            int to = toNative ? native : canonical;
            if (from != 0 && (value & from) == from)
            {
                result |= to;
            }
        }

        return result;
    }
}
