namespace BackupFuse.Core.FileTrees;

/// <summary>What an entry of a <see cref="IFileTree"/> is.</summary>
public enum FileTreeEntryKind : byte
{
    /// <summary>A directory; its children are a contiguous range of entries.</summary>
    Directory = 0,

    /// <summary>A regular file with content.</summary>
    File = 1,

    /// <summary>A symbolic link; <see cref="FileTreeEntry.SymlinkTarget"/> holds the target.</summary>
    Symlink = 2,

    /// <summary>A device, FIFO or socket: kept in the catalog, with no content.</summary>
    Other = 3,
}
