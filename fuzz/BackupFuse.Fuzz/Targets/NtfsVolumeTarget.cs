using BackupFuse.BackupImage.Format;

namespace BackupFuse.Fuzz.Targets;

/// <summary>NTFS $Bitmap through the $MFT (src/BackupFuse.BackupImage/Volumes/NtfsUsedBlocks.cs).</summary>
public sealed class NtfsVolumeTarget : VolumeTarget
{
    /// <inheritdoc/>
    public override string Name => "ntfs";

    /// <inheritdoc/>
    protected override FileSystemKind Kind => FileSystemKind.Ntfs;

    /// <inheritdoc/>
    protected override long MinimumLength => 4L << 20;

    /// <inheritdoc/>
    protected override string[] MakeFileSystem => ["mkntfs", "-q", "-F", "-Q"];

    /// <inheritdoc/>
    protected override void PrepareSeed(byte[] volume)
    {
        // A fresh $LogFile is 0xFF bytes (1 MiB of the 4 MiB volume); the used-block map never reads it.
        for (int at = 0; at + SparseInput.PageSize <= volume.Length; at += SparseInput.PageSize)
        {
            var page = volume.AsSpan(at, SparseInput.PageSize);
            if (page.Count((byte)0xFF) > SparseInput.PageSize * 3 / 4)
            {
                page.Clear();
            }
        }
    }
}
