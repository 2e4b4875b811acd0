using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>The Virtual Disk Size metadata item: the disk size in bytes (a multiple of the logical sector size, at most 64 TiB).</summary>
public readonly record struct VirtualDiskSize(ulong Value)
{
    /// <summary>Exact item length.</summary>
    public const int Size = 8;

    /// <summary>Largest size the format allows (64 TiB); VhdxLayout refuses a bigger disk with an InvalidDataException.</summary>
    public const ulong MaxValue = 64UL << 40;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>u64.</summary>
        public const int Value = 0;
    }

    /// <summary>Decodes the item.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out VirtualDiskSize value)
    {
        value = default;
        if (source.Length < Size)
        {
            return false;
        }

        value = new VirtualDiskSize(BinaryPrimitives.ReadUInt64LittleEndian(source));
        return true;
    }

    /// <summary>Writes the 8 bytes.</summary>
    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64LittleEndian(destination, Value);
}
