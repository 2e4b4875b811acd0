using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>The File Parameters metadata item: block size and the LeaveBlocksAllocated / HasParent flags.</summary>
public readonly record struct FileParameters(uint BlockSize, bool LeaveBlocksAllocated, bool HasParent)
{
    /// <summary>Exact item length.</summary>
    public const int Size = 8;

    /// <summary>Smallest allowed block size.</summary>
    public const uint MinBlockSize = 1024 * 1024;

    /// <summary>Largest allowed block size.</summary>
    public const uint MaxBlockSize = 256 * 1024 * 1024;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>u32.</summary>
        public const int BlockSize = 0;

        /// <summary>u32: bit 0 LeaveBlocksAllocated, bit 1 HasParent.</summary>
        public const int Flags = 4;
    }

    /// <summary>Whether <see cref="BlockSize"/> is a power of two from 1 MiB to 256 MiB.</summary>
    public bool IsBlockSizeValid => BlockSize is >= MinBlockSize and <= MaxBlockSize && (BlockSize & (BlockSize - 1)) == 0;

    /// <summary>Decodes the item.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out FileParameters value)
    {
        value = default;
        if (source.Length < Size)
        {
            return false;
        }

        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.Flags..]);
        value = new FileParameters(BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.BlockSize..]), (flags & 1) != 0, (flags & 2) != 0);
        return true;
    }

    /// <summary>Writes the 8 bytes.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.BlockSize..], BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.Flags..], (LeaveBlocksAllocated ? 1u : 0u) | (HasParent ? 2u : 0u));
    }
}
