namespace BackupFuse.BackupImage.Writing;

/// <summary>Progress of a backup: disk bytes processed (holes count as processed) out of the disk size.</summary>
/// <param name="BytesDone">Disk bytes processed so far, in disk order.</param>
/// <param name="BytesTotal">Disk size.</param>
/// <param name="BytesWritten">Bytes written to the image so far.</param>
public readonly record struct BackupProgress(long BytesDone, long BytesTotal, long BytesWritten);
