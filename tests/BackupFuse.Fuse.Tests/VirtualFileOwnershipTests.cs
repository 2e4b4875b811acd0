using BackupFuse.Fuse.Interop;
using BackupFuse.Fuse.Overlay;

namespace BackupFuse.Fuse.Tests;

/// <summary>What a chown/chmod through the mount remembers, and for which file.</summary>
public sealed class VirtualFileOwnershipTests
{
    [Fact]
    public void AChmodAndChownThroughTheMountAreShownForThatFile()
    {
        var ownership = new VirtualFileOwnership();
        var plugin = File(inode: 7, uid: 1000, mode: 0x8000 | 0x180 /* 0600 */, mtime: 100);
        ownership.SetMode(plugin, 0x1B6 /* 0666 */);
        ownership.SetOwner(plugin, 64055, uint.MaxValue);

        var shown = plugin;
        ownership.Apply(ref shown);
        Assert.Equal(0x1B6u, shown.Mode & 0xFFF);
        Assert.Equal(64055u, shown.Uid);
        Assert.Equal(plugin.Gid, shown.Gid);
    }

    [Fact]
    public void AnotherFileOnTheSameInodeNeverInheritsWhatWasSetForTheOldOne()
    {
        // User 1000 opens his plugin to everyone through the mount, deletes it; user 1001's new plugin gets the freed
        // inode. Before, the remembered 0666 (and owner) were keyed by inode alone and were shown for 1001's file.
        var ownership = new VirtualFileOwnership();
        var old = File(inode: 7, uid: 1000, mode: 0x8000 | 0x1A4 /* 0644 */, mtime: 100);
        ownership.SetMode(old, 0x1B6);
        ownership.SetOwner(old, 1000, uint.MaxValue);

        var replacement = File(inode: 7, uid: 1001, mode: 0x8000 | 0x180 /* 0600 */, mtime: 200);
        var shown = replacement;
        ownership.Apply(ref shown);
        Assert.Equal(0x180u, shown.Mode & 0xFFF);
        Assert.Equal(1001u, shown.Uid);
    }

    private static Stat File(ulong inode, uint uid, uint mode, long mtime) => new()
    {
        Device = 42,
        Inode = inode,
        Uid = uid,
        Gid = uid,
        Mode = mode,
        Size = 200,
        ModifyTime = new Timespec { Seconds = mtime },
    };
}
