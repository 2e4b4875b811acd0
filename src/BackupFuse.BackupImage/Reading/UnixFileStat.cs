namespace BackupFuse.BackupImage.Reading;

/// <summary>What tells one file apart from another and from an older version of itself.</summary>
public readonly record struct FileIdentity(ulong Device, ulong Inode, long Size, long ModifiedSeconds, long ModifiedNanoseconds);

/// <summary>The parts of stat(2) that access rules and identity checks need.</summary>
/// <param name="Identity">Device, inode, size and modification time.</param>
/// <param name="Uid">Owner.</param>
/// <param name="Gid">Group.</param>
/// <param name="Mode">st_mode (type and permission bits).</param>
public readonly record struct UnixFileStat(FileIdentity Identity, uint Uid, uint Gid, uint Mode)
{
    /// <summary>st_ctim: the last status change, in nanoseconds since 1970 (0 when unknown). Set by the kernel on every
    /// write, chmod, link or rename: unlike size and mtime, the file's owner cannot choose it.</summary>
    public long ChangedUnixNs { get; init; }

    /// <summary>Whether this is a regular file.</summary>
    public bool IsRegularFile => (Mode & 0xF000) == 0x8000;

    /// <summary>Whether this is a directory.</summary>
    public bool IsDirectory => (Mode & 0xF000) == 0x4000;

    /// <summary>A short name of the file type, for messages ("FIFO", "directory", ...).</summary>
    public string TypeName => (Mode & 0xF000) switch
    {
        0x8000 => "regular file",
        0x4000 => "directory",
        0x1000 => "FIFO",
        0x2000 => "character device",
        0x6000 => "block device",
        0xC000 => "socket",
        0xA000 => "symbolic link",
        _ => "file of unknown type",
    };
}
