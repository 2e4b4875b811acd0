using System.Collections.Concurrent;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes:
// - Who a virtual file (a plugin) belongs to and its permission bits, as the mount PRESENTS them. This is what the
//   kernel checks opens against (default_permissions), so it decides who may open the disk through the mount; it is
//   never written to the plugin file underneath.
// - Two sources, the later one winning: the mount's defaults (--owner, --mode; unset parts keep the plugin file's own
//   values), then what a chown/chmod through the mount set on that file (libvirt's dynamic_ownership chowns a disk to
//   its qemu user when a domain starts and back when it stops). Those are kept in memory only, per underlying file
//   (device, inode) AND that file's version (its real owner, size and mtime when the chown/chmod was made): a
//   remembered entry applies only while the file is still that version, so a plugin file deleted and replaced by
//   another (even one that gets the freed inode back, of another user) starts afresh and never inherits what a chown
//   or chmod of the old one set. An unmount forgets everything.
// - Why not pass the chown through: the plugin file's real owner is the user whose read access to the backup images
//   decides whether the plugin serves at all (the owner rule, docs/product.md Security), and the changes files belong
//   to him. A chown to libvirt-qemu would make every root-only (0600) backup unreadable through that plugin and hand
//   its changes to another user. So the owner rule keeps using the real owner; this class only widens or narrows who
//   may open the presented file, which only root (or the presented owner, for chmod and chgrp to his own groups) may
//   change, as the kernel enforces on the presented attributes.
// - Read-only presentation (a read-only mount, a pristine view) still clears the write bits after this is applied
//   (VirtualFile.ApplyInfo), whatever the mode says.
// - Thread-safe: FUSE worker threads call Apply/Set concurrently (one ConcurrentDictionary, immutable values).

/// <summary>The owner and mode the mount presents for its virtual files (see design notes).</summary>
public sealed class VirtualFileOwnership
{
    private const uint Unchanged = uint.MaxValue;

    private readonly ConcurrentDictionary<(ulong Device, ulong Inode), Presented> _set = new();

    /// <summary>Owner uid shown for every virtual file (null: the plugin file's own).</summary>
    public uint? Uid { get; init; }

    /// <summary>Group gid shown for every virtual file (null: the plugin file's own).</summary>
    public uint? Gid { get; init; }

    /// <summary>Permission bits (0..0777) shown for every virtual file (null: the plugin file's own).</summary>
    public uint? Mode { get; init; }

    /// <summary>Replaces uid, gid and permission bits of <paramref name="st"/> (the stat of the plugin file underneath) with the presented ones.</summary>
    public void Apply(ref Stat st)
    {
        var shown = Lookup(st);
        st.Uid = shown.Uid;
        st.Gid = shown.Gid;
        st.Mode = (st.Mode & LibC.S_IFMT) | shown.Mode;
    }

    /// <summary>
    /// A chown through the mount of the virtual file whose underlying stat is <paramref name="underlying"/>:
    /// remembered, not applied to the file (uint.MaxValue for an id keeps it, as chown(2) does).
    /// </summary>
    public void SetOwner(in Stat underlying, uint uid, uint gid)
    {
        var key = (underlying.Device, underlying.Inode);
        var stat = underlying;
        _set.AddOrUpdate(
            key,
            _ => With(Lookup(stat), uid, gid),
            (_, old) => With(Current(old, stat) ?? Lookup(stat), uid, gid));
    }

    /// <summary>A chmod through the mount of the virtual file whose underlying stat is <paramref name="underlying"/>: remembered, not applied.</summary>
    public void SetMode(in Stat underlying, uint mode)
    {
        var key = (underlying.Device, underlying.Inode);
        var stat = underlying;
        uint bits = mode & 0xFFF;
        _set.AddOrUpdate(key, _ => Lookup(stat) with { Mode = bits }, (_, old) => (Current(old, stat) ?? Lookup(stat)) with { Mode = bits });
    }

    private static Presented With(Presented old, uint uid, uint gid) =>
        old with { Uid = uid == Unchanged ? old.Uid : uid, Gid = gid == Unchanged ? old.Gid : gid };

    private static FileVersion VersionOf(in Stat st) => new(st.Uid, st.Size, st.ModifyTime.Seconds, st.ModifyTime.Nanoseconds);

    /// <summary><paramref name="set"/> if it was made for the file as it is now, else null (the file was replaced).</summary>
    private static Presented? Current(Presented set, in Stat st) => set.Version == VersionOf(st) ? set : null;

    private Presented Lookup(in Stat st) =>
        _set.TryGetValue((st.Device, st.Inode), out var set) && Current(set, st) is { } current
            ? current
            : new Presented(Uid ?? st.Uid, Gid ?? st.Gid, Mode ?? (st.Mode & 0xFFF), VersionOf(st));

    private sealed record FileVersion(uint Uid, long Size, long ModifySeconds, long ModifyNanoseconds);

    private sealed record Presented(uint Uid, uint Gid, uint Mode, FileVersion Version);
}
