namespace BackupFuse.Fuse.Overlay;

/// <summary>The attributes of a file in the served directory, as fstatat saw them (what a provider caches by).</summary>
public readonly record struct UnderlyingFileStat(
    ulong Device,
    ulong Inode,
    long Size,
    long ModifiedSeconds,
    long ModifiedNanoseconds,
    uint Mode,
    uint Uid,
    uint Gid)
{
    /// <summary>Last modification time.</summary>
    public DateTime ModifiedUtc => DateTime.UnixEpoch.AddTicks((ModifiedSeconds * TimeSpan.TicksPerSecond) + (ModifiedNanoseconds / 100));

    /// <summary>Whether this is a regular file.</summary>
    public bool IsRegularFile => (Mode & 0xF000) == 0x8000;

    /// <summary>Whether this is a directory.</summary>
    public bool IsDirectory => (Mode & 0xF000) == 0x4000;

    /// <summary>Number of hard links (st_nlink).</summary>
    public ulong LinkCount { get; init; }

    internal static UnderlyingFileStat From(in Interop.Stat st) =>
        new(st.Device, st.Inode, st.Size, st.ModifyTime.Seconds, st.ModifyTime.Nanoseconds, st.Mode, st.Uid, st.Gid) { LinkCount = st.LinkCount };
}
