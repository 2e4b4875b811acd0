using System.Buffers.Binary;

namespace BackupFuse.Core.Partitions;

/// <summary>One 16-byte MBR partition entry (LBA addressing; the CHS fields hold the "beyond 8 GiB" marker FE FF FF).</summary>
public static class MbrEntry
{
    /// <summary>Size of an entry.</summary>
    public const int Size = 16;

    /// <summary>Offset of the first of the four entries in sector 0.</summary>
    public const int TableOffset = 446;

    /// <summary>Writes an entry for <paramref name="firstLba"/> + <paramref name="sectors"/> of type <paramref name="type"/>.</summary>
    public static void Write(Span<byte> entry, byte type, uint firstLba, uint sectors, byte status = 0)
    {
        entry = entry[..Size];
        entry.Clear();
        entry[0] = status;
        WriteChs(entry[1..], firstLba);
        entry[4] = type;
        WriteChs(entry[5..], firstLba + sectors - 1);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], firstLba);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], sectors);
    }

    /// <summary>Writes the boot signature 55 AA at the end of sector 0.</summary>
    public static void WriteSignature(Span<byte> sector0)
    {
        sector0[510] = 0x55;
        sector0[511] = 0xAA;
    }

    private static void WriteChs(Span<byte> chs, uint lba)
    {
        // CHS with 255 heads and 63 sectors per track, as fdisk writes it; beyond cylinder 1023: FE FF FF.
        const uint heads = 255, sectorsPerTrack = 63;
        uint cylinder = lba / (heads * sectorsPerTrack);
        if (cylinder > 1023)
        {
            chs[0] = 0xFE;
            chs[1] = 0xFF;
            chs[2] = 0xFF;
            return;
        }

        uint head = lba / sectorsPerTrack % heads;
        uint sector = (lba % sectorsPerTrack) + 1;
        chs[0] = (byte)head;
        chs[1] = (byte)(sector | ((cylinder >> 2) & 0xC0));
        chs[2] = (byte)cylinder;
    }
}
