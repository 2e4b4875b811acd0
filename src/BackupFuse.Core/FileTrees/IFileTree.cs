namespace BackupFuse.Core.FileTrees;

/// <summary>
/// A read-only tree of files (one point of a file-level backup, or a directory on disk) in the fixed order the
/// synthesized file systems lay out: entries are indexed 0..Count-1 breadth-first; entry 0 is the root directory;
/// the children of a directory are the contiguous range [FirstChild, FirstChild + ChildCount), sorted by the ordinal
/// order of their UTF-8 names.
/// </summary>
/// <remarks>
/// Contract: the same tree always gives the same entries in the same order (synthesized disks are deterministic).
/// Implementations are thread-safe for concurrent <see cref="GetEntry"/> and <see cref="ReadFile"/> calls.
/// Errors are exceptions: <see cref="InvalidDataException"/> for a damaged catalog or content, <see cref="IOException"/>
/// for the host.
/// </remarks>
public interface IFileTree : IDisposable
{
    /// <summary>Number of entries, the root included (at least 1).</summary>
    int Count { get; }

    /// <summary>The entry at <paramref name="index"/> (0 &lt;= index &lt; Count).</summary>
    FileTreeEntry GetEntry(int index);

    /// <summary>The kind of entry <paramref name="index"/>; trees with a compact catalog answer without decoding names.</summary>
    FileTreeEntryKind KindOf(int index) => GetEntry(index).Kind;

    /// <summary>The size of entry <paramref name="index"/> (<see cref="FileTreeEntry.Size"/>).</summary>
    long SizeOf(int index) => GetEntry(index).Size;

    /// <summary>The name of entry <paramref name="index"/> (<see cref="FileTreeEntry.Name"/>), without the rest of the entry.</summary>
    string NameOf(int index) => GetEntry(index).Name;

    /// <summary>
    /// Fills <paramref name="buffer"/> with the content of file <paramref name="index"/> at <paramref name="offset"/>;
    /// the caller keeps <c>offset + buffer.Length &lt;= Size</c>.
    /// </summary>
    void ReadFile(int index, long offset, Span<byte> buffer);
}
