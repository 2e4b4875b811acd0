namespace BackupFuse.Core.FileTrees;

/// <summary>Fills <paramref name="buffer"/> with a file's content at <paramref name="offset"/> (within its size).</summary>
public delegate void FileContentReader(long offset, Span<byte> buffer);
