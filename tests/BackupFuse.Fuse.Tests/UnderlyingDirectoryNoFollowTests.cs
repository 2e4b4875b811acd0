using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>The no-follow helpers of UnderlyingDirectory on real directories: no symlink is followed at any depth.</summary>
public sealed class UnderlyingDirectoryNoFollowTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfnofollow");
    private readonly UnderlyingDirectory _root;

    public UnderlyingDirectoryNoFollowTests()
    {
        Directory.CreateDirectory(_dir["root/a/b"]);
        Directory.CreateDirectory(_dir["elsewhere/b"]);
        _root = UnderlyingDirectory.Open(_dir["root"]);
    }

    public void Dispose()
    {
        _root.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void OpenDirectory_WalksRealDirectories()
    {
        using var b = _root.OpenDirectory("a/b");
        Assert.Equal(_dir["root/a/b"], b.Path);
        Assert.True(b.GetStat().IsDirectory);
        using var again = _root.OpenDirectory(string.Empty);
        Assert.Equal(_root.GetStat().Inode, again.GetStat().Inode);
    }

    [Fact]
    public void OpenDirectory_RefusesASymlinkInTheMiddleAndAtTheEnd()
    {
        File.CreateSymbolicLink(_dir["root/link"], _dir["elsewhere"]);
        var middle = Assert.Throws<UnauthorizedAccessException>(() => _root.OpenDirectory("link/b"));
        Assert.Contains($"{_dir["root/link"]}: is a symbolic link", middle.Message, StringComparison.Ordinal);
        Assert.Throws<UnauthorizedAccessException>(() => _root.OpenDirectory("link"));
        Assert.Throws<UnauthorizedAccessException>(() => _root.OpenDirectory("a/../link"));
        Assert.Throws<DirectoryNotFoundException>(() => _root.OpenDirectory("a/missing"));
    }

    [Fact]
    public void CreateDirectory_DoesNotFollowAnExistingSymlink()
    {
        using (var made = _root.CreateDirectory("state", (UnixFileMode)0x1C0, out bool created))
        {
            Assert.True(created);
        }

        using (_root.CreateDirectory("state", (UnixFileMode)0x1C0, out bool createdAgain))
        {
            Assert.False(createdAgain);
        }

        File.CreateSymbolicLink(_dir["root/trap"], _dir["elsewhere"]);
        Assert.Throws<UnauthorizedAccessException>(() => _root.CreateDirectory("trap", (UnixFileMode)0x1C0, out _));
    }

    [Fact]
    public void RenameAndDelete_ActOnTheEntriesNotOnTheirTargets()
    {
        using var a = _root.OpenDirectory("a");
        File.WriteAllText(_dir["elsewhere/victim"], "keep");
        File.CreateSymbolicLink(_dir["root/a/link"], _dir["elsewhere/victim"]);
        using (var handle = a.OpenFile("new", FileAccess.ReadWrite, FileMode.CreateNew))
        {
            RandomAccess.Write(handle, "fresh"u8.ToArray(), 0);
        }

        var refused = Assert.Throws<ErrnoException>(() => a.Rename("new", "link", replace: false));
        Assert.Equal(Errno.EEXIST, refused.Errno);
        a.Rename("new", "link", replace: true);
        Assert.Equal("fresh", File.ReadAllText(_dir["root/a/link"]));
        Assert.Equal("keep", File.ReadAllText(_dir["elsewhere/victim"]));

        File.Delete(_dir["root/a/link"]);
        File.CreateSymbolicLink(_dir["root/a/link"], _dir["elsewhere/victim"]);
        Assert.True(a.Delete("link"));
        Assert.False(a.Delete("link"));
        Assert.True(File.Exists(_dir["elsewhere/victim"]));
        Assert.Throws<ArgumentException>(() => a.Delete("b/x"));
    }

    [Fact]
    public unsafe void PinBeneath_ReportsTheOpensErrnoNotTheParentsClose()
    {
        // A plugin in a subdirectory removed (or swapped for a symlink) between lookup and open must answer ENOENT/ELOOP;
        // closing the parent descriptor afterwards used to reset errno to 0, which the FUSE side turned into EIO.
        File.CreateSymbolicLink(_dir["root/a/b/link"], _dir["elsewhere"]);
        foreach (var (relative, expected) in new[] { ("a/b/gone.vhdx", Errno.ENOENT), ("a/b/link/x", Errno.ELOOP) })
        {
            byte[] path = System.Text.Encoding.UTF8.GetBytes(relative + "\0");
            fixed (byte* p = path)
            {
                Assert.Equal(-1, _root.PinBeneath(p));
                Assert.Equal(expected, BackupFuse.Fuse.Interop.LibC.LastError());
            }
        }
    }
}
