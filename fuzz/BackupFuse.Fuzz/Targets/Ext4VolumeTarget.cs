using BackupFuse.BackupImage.Format;

namespace BackupFuse.Fuzz.Targets;

/// <summary>ext2/3/4 block bitmaps (src/BackupFuse.BackupImage/Volumes/Ext4UsedBlocks.cs).</summary>
public sealed class Ext4VolumeTarget : VolumeTarget
{
    /// <inheritdoc/>
    public override string Name => "ext4";

    /// <inheritdoc/>
    protected override FileSystemKind Kind => FileSystemKind.Ext4;

    /// <inheritdoc/>
    protected override long MinimumLength => 4L << 20;

    /// <inheritdoc/>
    protected override string[] MakeFileSystem => ["mkfs.ext4", "-q", "-F", "-b", "1024", "-N", "64", "-g", "1024", "-O", "^has_journal,^resize_inode"];
}
