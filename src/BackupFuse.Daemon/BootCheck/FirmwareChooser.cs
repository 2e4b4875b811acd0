using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - Chooses the firmware a disk needs from its partition table, the way the machine it came from booted it:
//   GPT with a BIOS boot partition (GRUB's core.img lives there) -> BIOS; GPT with an EFI system partition -> UEFI;
//   any other GPT (e.g. a legacy-BIOS-bootable partition, as syslinux uses) -> BIOS; MBR with an EFI system
//   partition (type 0xEF) -> UEFI; any other MBR, or no partition table at all -> BIOS (SeaBIOS then says clearly
//   that nothing boots, which is a verdict in itself).
// - Reads only the first sectors and the GPT entry array through the disk source; 512-byte sectors, then 4096.
// - Pure: no state, thread-safe.

/// <summary>The firmware a guest boots with.</summary>
public enum Firmware
{
    /// <summary>Legacy BIOS (SeaBIOS).</summary>
    Bios,

    /// <summary>UEFI (OVMF).</summary>
    Uefi,
}

/// <summary>Picks BIOS or UEFI for a disk from its partition table.</summary>
public static class FirmwareChooser
{
    private static readonly Guid EfiSystemPartition = new("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    private static readonly Guid BiosBootPartition = new("21686148-6449-6E6F-744E-656564454649");

    /// <summary>The firmware for <paramref name="disk"/> and why (one short phrase for the report).</summary>
    public static (Firmware Firmware, string Reason) Choose(IBlockSource disk)
    {
        ArgumentNullException.ThrowIfNull(disk);
        foreach (int sector in new[] { 512, 4096 })
        {
            if (disk.Length < 2L * sector)
            {
                continue;
            }

            var header = ReadAt(disk, sector, 512);
            if (!header.AsSpan(0, 8).SequenceEqual("EFI PART"u8))
            {
                continue;
            }

            long entriesLba = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(72));
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(80));
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(84));
            if (size < 128 || size > 4096 || count == 0 || count > 1024 || entriesLba < 1 || (entriesLba * sector) + ((long)count * size) > disk.Length)
            {
                return (Firmware.Bios, "GPT with an unreadable partition array: BIOS");
            }

            var entries = ReadAt(disk, entriesLba * sector, (int)(count * size));
            bool esp = false;
            for (int i = 0; i < count; i++)
            {
                var type = new Guid(entries.AsSpan(i * (int)size, 16));
                if (type == BiosBootPartition)
                {
                    return (Firmware.Bios, "GPT with a BIOS boot partition: BIOS");
                }

                esp |= type == EfiSystemPartition;
            }

            return esp ? (Firmware.Uefi, "GPT with an EFI system partition: UEFI") : (Firmware.Bios, "GPT without an EFI system partition: BIOS");
        }

        if (disk.Length < 512)
        {
            return (Firmware.Bios, "disk smaller than one sector: BIOS");
        }

        var mbr = ReadAt(disk, 0, 512);
        if (mbr[510] != 0x55 || mbr[511] != 0xAA)
        {
            return (Firmware.Bios, "no partition table: BIOS");
        }

        for (int i = 0; i < 4; i++)
        {
            if (mbr[446 + (i * 16) + 4] == 0xEF)
            {
                return (Firmware.Uefi, "MBR with an EFI system partition: UEFI");
            }
        }

        return (Firmware.Bios, "MBR: BIOS");
    }

    private static byte[] ReadAt(IBlockSource disk, long offset, int length)
    {
        var buffer = new byte[length];
        disk.Read(offset, buffer);
        return buffer;
    }
}
