namespace BackupFuse.Core.FileTrees;

/// <summary>An <see cref="IFileTree"/> held in memory, made by <see cref="FileTreeBuilder"/>; content comes from per-file readers.</summary>
public sealed class MemoryFileTree : IFileTree
{
    private readonly FileTreeEntry[] _entries;
    private readonly FileContentReader?[] _readers;

    internal MemoryFileTree(FileTreeEntry[] entries, FileContentReader?[] readers)
    {
        _entries = entries;
        _readers = readers;
    }

    /// <inheritdoc/>
    public int Count => _entries.Length;

    /// <inheritdoc/>
    public FileTreeEntry GetEntry(int index) => _entries[index];

    /// <inheritdoc/>
    public void ReadFile(int index, long offset, Span<byte> buffer)
    {
        var e = _entries[index];
        if (e.Kind != FileTreeEntryKind.File || offset < 0 || offset + buffer.Length > e.Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{buffer.Length} is outside entry {index} ({e.Kind}, {e.Size} bytes)");
        }

        if (buffer.Length > 0)
        {
            _readers[index]!(offset, buffer);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
