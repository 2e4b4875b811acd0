using BackupFuse.BackupImage.Format;

namespace BackupFuse.Fuzz.Targets;

/// <summary>XFS free-space B+trees and log state (src/BackupFuse.BackupImage/Volumes/XfsUsedBlocks.cs, XfsLogState.cs).</summary>
public sealed class XfsVolumeTarget : VolumeTarget
{
    /// <inheritdoc/>
    public override string Name => "xfs";

    /// <inheritdoc/>
    protected override FileSystemKind Kind => FileSystemKind.Xfs;

    /// <inheritdoc/>
    protected override long MinimumLength => 300L << 20;

    /// <inheritdoc/>
    protected override string[] MakeFileSystem => ["mkfs.xfs", "-q", "-f"];
}
