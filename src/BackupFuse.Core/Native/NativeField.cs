namespace BackupFuse.Core.Native;

/// <summary>One integer member of a native struct: where it is and how wide (1, 2, 4 or 8 bytes, little-endian).</summary>
/// <param name="Offset">Byte offset from the start of the struct (offsetof).</param>
/// <param name="Size">Width in bytes (sizeof the member's type).</param>
public readonly record struct NativeField(int Offset, int Size)
{
    /// <summary>A member the layout does not have (nothing is written, 0 is read).</summary>
    public static NativeField None => new(-1, 0);

    /// <summary>True when the layout has this member.</summary>
    public bool Exists => Offset >= 0;

    /// <summary>Stores <paramref name="value"/> truncated to the member's width.</summary>
    public unsafe void Write(byte* structBase, long value)
    {
        if (!Exists)
        {
            return;
        }

        byte* p = structBase + Offset;
        switch (Size)
        {
            case 1: *p = (byte)value; break;
            case 2: *(ushort*)p = (ushort)value; break;
            case 4: *(uint*)p = (uint)value; break;
            case 8: *(long*)p = value; break;
            default: throw new InvalidOperationException($"native field of {Size} bytes");
        }
    }

    /// <summary>Loads the member, zero-extended (<paramref name="signed"/>: sign-extended).</summary>
    public unsafe long Read(byte* structBase, bool signed = false)
    {
        if (!Exists)
        {
            return 0;
        }

        byte* p = structBase + Offset;
        return Size switch
        {
            1 => signed ? *(sbyte*)p : *p,
            2 => signed ? *(short*)p : *(ushort*)p,
            4 => signed ? *(int*)p : *(uint*)p,
            8 => *(long*)p,
            _ => throw new InvalidOperationException($"native field of {Size} bytes"),
        };
    }
}
