using System.Buffers.Binary;
using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - Recognises a file system by the signatures in its superblock or boot sector, like blkid: ext2/3/4 (0xEF53 at
//   1080; the feature flags tell ext2, ext3 and ext4 apart), XFS ("XFSB" at 0), Btrfs ("_BHRfS_M" at 64 KiB + 64),
//   NTFS / exFAT (OEM name at 3), FAT (boot signature and "FAT" type string). Only the first 68 KiB are read.
// - A probe never decides what is stored; it only names the file system (shown by `info`, used for the partition
//   type and to choose a used-block map, which checks its own structures again).

/// <summary>Names the file system at the start of a volume.</summary>
public static class FileSystemProbe
{
    /// <summary>Bytes a probe reads from the start of the volume (less when the volume is smaller).</summary>
    public const int ProbeLength = 0x10000 + 4096;

    /// <summary>The file system of a volume of <paramref name="length"/> bytes read through <paramref name="read"/>.</summary>
    public static FileSystemKind Probe(VolumeReader read, long length)
    {
        ArgumentNullException.ThrowIfNull(read);
        byte[] head = new byte[(int)Math.Min(ProbeLength, length)];
        read(0, head);
        return Probe(head);
    }

    /// <summary>The file system whose first bytes are <paramref name="head"/> (up to <see cref="ProbeLength"/>).</summary>
    public static FileSystemKind Probe(ReadOnlySpan<byte> head)
    {
        if (head.Length >= 1024 + 264 && BinaryPrimitives.ReadUInt16LittleEndian(head[(1024 + 56)..]) == 0xEF53)
        {
            var sb = head[1024..];
            uint compat = BinaryPrimitives.ReadUInt32LittleEndian(sb[92..]);
            uint incompat = BinaryPrimitives.ReadUInt32LittleEndian(sb[96..]);
            const uint ext4Incompat = 0x40 | 0x80 | 0x200 | 0x2000 | 0x8000; // extents, 64bit, flex_bg, large dir/inline data
            return (incompat & ext4Incompat) != 0 ? FileSystemKind.Ext4 : (compat & 0x4) != 0 ? FileSystemKind.Ext3 : FileSystemKind.Ext2;
        }

        if (head.Length >= 4 && head[..4].SequenceEqual("XFSB"u8))
        {
            return FileSystemKind.Xfs;
        }

        if (head.Length >= 0x10048 && head.Slice(0x10040, 8).SequenceEqual("_BHRfS_M"u8))
        {
            return FileSystemKind.Btrfs;
        }

        if (head.Length >= 512 && head.Slice(3, 8).SequenceEqual("NTFS    "u8))
        {
            return FileSystemKind.Ntfs;
        }

        if (head.Length >= 512 && head.Slice(3, 8).SequenceEqual("EXFAT   "u8))
        {
            return FileSystemKind.ExFat;
        }

        if (head.Length >= 512 && head[510] == 0x55 && head[511] == 0xAA &&
            (head.Slice(54, 3).SequenceEqual("FAT"u8) || head.Slice(82, 5).SequenceEqual("FAT32"u8)))
        {
            return FileSystemKind.Fat;
        }

        return FileSystemKind.Unknown;
    }

    /// <summary>The name users see ("ext4", "xfs", ..., "unknown").</summary>
    public static string Describe(FileSystemKind kind) => kind switch
    {
        FileSystemKind.Ext2 => "ext2",
        FileSystemKind.Ext3 => "ext3",
        FileSystemKind.Ext4 => "ext4",
        FileSystemKind.Xfs => "xfs",
        FileSystemKind.Btrfs => "btrfs",
        FileSystemKind.Ntfs => "ntfs",
        FileSystemKind.Fat => "fat",
        FileSystemKind.ExFat => "exfat",
        FileSystemKind.Unknown => "unknown",
        _ => $"unknown ({(byte)kind})",
    };
}
