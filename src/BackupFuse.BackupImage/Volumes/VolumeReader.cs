namespace BackupFuse.BackupImage.Volumes;

/// <summary>Reads exactly <paramref name="buffer"/>.Length bytes of a volume at <paramref name="offset"/> or throws.</summary>
public delegate void VolumeReader(long offset, Span<byte> buffer);
