namespace BackupFuse.Core.Partitions;

/// <summary>The protective MBR in front of a GPT: one entry of type 0xEE covering the disk (UEFI 2.x, 5.2.3).</summary>
public static class ProtectiveMbr
{
    /// <summary>Sector 0 of a GPT disk of <paramref name="diskSectors"/> sectors.</summary>
    public static byte[] Create(long diskSectors)
    {
        byte[] sector = new byte[PartitionedDiskLayout.SectorSize];
        uint size = (uint)Math.Min(diskSectors - 1, uint.MaxValue);
        MbrEntry.Write(sector.AsSpan(MbrEntry.TableOffset), 0xEE, 1, size);
        // UEFI: the protective entry's CHS start is 00 02 00 and its end FF FF FF.
        sector[MbrEntry.TableOffset + 1] = 0x00;
        sector[MbrEntry.TableOffset + 2] = 0x02;
        sector[MbrEntry.TableOffset + 3] = 0x00;
        sector[MbrEntry.TableOffset + 5] = 0xFF;
        sector[MbrEntry.TableOffset + 6] = 0xFF;
        sector[MbrEntry.TableOffset + 7] = 0xFF;
        MbrEntry.WriteSignature(sector);
        return sector;
    }
}
