namespace BackupFuse.Core.FileTrees;

/// <summary>One entry of a <see cref="IFileTree"/>.</summary>
/// <param name="Name">The name in its directory as it was backed up (UTF-8 decoded; never empty, never "." or "..", no '/' or NUL); "" for the root.</param>
/// <param name="Kind">What the entry is.</param>
/// <param name="Parent">Index of the directory holding it; the root (index 0) is its own parent.</param>
/// <param name="FirstChild">For a directory, the index of its first child (children are contiguous); 0 otherwise.</param>
/// <param name="ChildCount">For a directory, how many children it has; 0 otherwise.</param>
/// <param name="Size">Content bytes of a file; 0 for anything else.</param>
/// <param name="ModifiedUnixNs">Modification time, nanoseconds since 1970-01-01 UTC (may be negative).</param>
/// <param name="AccessedUnixNs">Access time, nanoseconds since 1970-01-01 UTC.</param>
/// <param name="Mode">POSIX mode bits including the type bits (st_mode).</param>
/// <param name="SymlinkTarget">The target of a symlink; null for anything else.</param>
public readonly record struct FileTreeEntry(
    string Name,
    FileTreeEntryKind Kind,
    int Parent,
    int FirstChild,
    int ChildCount,
    long Size,
    long ModifiedUnixNs,
    long AccessedUnixNs,
    uint Mode,
    string? SymlinkTarget);
