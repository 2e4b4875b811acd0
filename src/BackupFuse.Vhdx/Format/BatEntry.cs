using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// One 64-bit BAT entry: state in bits 0-2, reserved bits 3-19 (zero), FileOffsetMB in bits 20-63.
/// <see cref="FileOffset"/> is in bytes (always a multiple of 1 MiB).
/// </summary>
public readonly record struct BatEntry(byte State, ulong FileOffset)
{
    /// <summary>Size of an entry.</summary>
    public const int Size = 8;

    /// <summary>Bits holding the state.</summary>
    public const ulong StateMask = 0x7;

    /// <summary>Reserved bits 3-19.</summary>
    public const ulong ReservedMask = 0xF_FFF8;

    /// <summary>Bits holding the file offset (in bytes, 1 MiB granular).</summary>
    public const ulong FileOffsetMask = 0xFFFF_FFFF_FFF0_0000;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>The whole u64.</summary>
        public const int Value = 0;
    }

    /// <summary>The state read as a payload block state.</summary>
    public PayloadBlockState PayloadState => (PayloadBlockState)State;

    /// <summary>The state read as a sector bitmap state.</summary>
    public SectorBitmapState SectorBitmapState => (SectorBitmapState)State;

    /// <summary>A payload entry.</summary>
    public static BatEntry Payload(PayloadBlockState state, ulong fileOffset) => new((byte)state, fileOffset);

    /// <summary>Decodes a raw value, ignoring reserved bits (QEMU and libvhdi ignore them too).</summary>
    public static BatEntry FromRaw(ulong raw) => new((byte)(raw & StateMask), raw & FileOffsetMask);

    /// <summary>The raw value; throws when the offset is not a multiple of 1 MiB or the state does not fit.</summary>
    public ulong ToRaw()
    {
        if ((FileOffset & ~FileOffsetMask) != 0 || State > StateMask)
        {
            throw new InvalidOperationException($"BAT entry state {State} / offset {FileOffset} cannot be encoded");
        }

        return FileOffset | State;
    }

    /// <summary>Decodes an entry; false when reserved bits are set (7-Zip rejects such files).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out BatEntry entry)
    {
        entry = default;
        if (source.Length < Size)
        {
            return false;
        }

        ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(source);
        entry = FromRaw(raw);
        return (raw & ReservedMask) == 0;
    }

    /// <summary>Writes the 8 bytes.</summary>
    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64LittleEndian(destination, ToRaw());
}
