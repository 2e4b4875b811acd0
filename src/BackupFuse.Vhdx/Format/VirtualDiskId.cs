namespace BackupFuse.Vhdx.Format;

/// <summary>The Virtual Disk ID metadata item ("page 83 data"): the disk's SCSI identity, shared by a differencing child.</summary>
public readonly record struct VirtualDiskId(Guid Value)
{
    /// <summary>Exact item length.</summary>
    public const int Size = 16;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>GUID.</summary>
        public const int Value = 0;
    }

    /// <summary>Decodes the item.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out VirtualDiskId value)
    {
        value = default;
        if (source.Length < Size)
        {
            return false;
        }

        value = new VirtualDiskId(new Guid(source[..Size]));
        return true;
    }

    /// <summary>Writes the 16 bytes.</summary>
    public void Write(Span<byte> destination) => Value.TryWriteBytes(destination);
}
