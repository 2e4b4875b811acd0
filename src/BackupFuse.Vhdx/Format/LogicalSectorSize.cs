using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>The Logical Sector Size metadata item: 512 or 4096.</summary>
public readonly record struct LogicalSectorSize(uint Value)
{
    /// <summary>Exact item length.</summary>
    public const int Size = 4;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>u32.</summary>
        public const int Value = 0;
    }

    /// <summary>Whether the value is one the format allows (512 or 4096).</summary>
    public bool IsValid => Value is 512 or 4096;

    /// <summary>Decodes the item.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogicalSectorSize value)
    {
        value = default;
        if (source.Length < Size)
        {
            return false;
        }

        value = new LogicalSectorSize(BinaryPrimitives.ReadUInt32LittleEndian(source));
        return true;
    }

    /// <summary>Writes the 4 bytes.</summary>
    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt32LittleEndian(destination, Value);
}
