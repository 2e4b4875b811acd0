using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Volumes;

/// <summary>Chooses the used-block map for a file system (ext2/3/4, XFS, NTFS; the others store every block); null with a reason means "store every block".</summary>
public static class UsedBlocks
{
    /// <summary>The map of the volume's file system, or null and the reason every block is stored.</summary>
    public static UsedBlockMap? TryBuild(FileSystemKind fileSystem, VolumeReader read, long volumeLength, out string reason)
    {
        ArgumentNullException.ThrowIfNull(read);

        // The structures come from the source, which may be damaged or hostile: a read outside the volume, an offset
        // outside a record or an arithmetic overflow means "inconsistent", and every block is stored.
        VolumeReader bounded = (offset, buffer) =>
        {
            if (offset < 0 || offset > volumeLength - buffer.Length)
            {
                throw new InvalidDataException($"a structure points outside the volume (offset {offset})");
            }

            read(offset, buffer);
        };
        try
        {
            switch (fileSystem)
            {
                case FileSystemKind.Ext2:
                case FileSystemKind.Ext3:
                case FileSystemKind.Ext4:
                    return Ext4UsedBlocks.TryBuild(bounded, volumeLength, out reason);
                case FileSystemKind.Xfs:
                    return XfsUsedBlocks.TryBuild(bounded, volumeLength, out reason);
                case FileSystemKind.Ntfs:
                    return NtfsUsedBlocks.TryBuild(bounded, volumeLength, out reason);
                default:
                    reason = $"no used-block map for file system {FileSystemProbe.Describe(fileSystem)}";
                    return null;
            }
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or IndexOutOfRangeException or OverflowException)
        {
            reason = $"the {FileSystemProbe.Describe(fileSystem)} allocation structures are inconsistent: {e.Message}";
            return null;
        }
    }
}
