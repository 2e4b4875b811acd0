using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using BackupFuse.Fuse.Interop;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// The pass-through side never acts outside the served directory when a directory of it is swapped for a symlink to
/// an outside directory (a race, or a user making root write where only root may): the kernel sends "/a/x" only if
/// "a" was a directory when it looked it up, so every such path is called on the file system directly after the swap,
/// in both resolution modes (openat2, and the no-follow walk used where openat2 is missing), and through a real mount
/// whose kernel cache still holds "a" as a directory. Legit symlinks keep working through the mount.
/// </summary>
public sealed unsafe class PassThroughSymlinkTests(ITestOutputHelper output) : IDisposable
{
    private const string OutsideContent = "only root may read or change this";
    private readonly TempDirectory _temp = new("bf-beneath");
    private readonly List<nint> _paths = [];

    private string Root => _temp["root"];

    private string Outside => _temp["outside"];

    public void Dispose()
    {
        foreach (var p in _paths)
        {
            Marshal.FreeCoTaskMem(p);
        }

        _temp.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DirectorySwappedForASymlink_EveryOperationFailsAndTheOutsideStaysUnchanged(bool walk)
    {
        Populate(Root);
        using var fs = DirectoryOverlayFileSystem.Open(Root);
        fs.Directory.ResolveByWalking = walk;
        SwapForSymlink("a");
        SwapForSymlink("deep/b");
        string before = Snapshot(Outside);

        foreach (var prefix in new[] { "/a", "/deep/b" })
        {
            string secret = prefix + "/inner.txt";
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => GetAttributes(fs, secret)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => Open(fs, secret, LibC.O_RDONLY)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => Open(fs, secret, LibC.O_WRONLY | LibC.O_TRUNC)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => Create(fs, prefix + "/new.txt")));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Unlink(P(secret))));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Rename(P("/b.txt"), P(prefix + "/b.txt"), 0)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Rename(P(secret), P("/stolen.txt"), 0)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Link(P(secret), P("/stolen.txt"))));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.ChangeMode(P(secret), 0x1FF, null)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.ChangeOwner(P(secret), 12345, 12345, null)));
            var when = new Timespec { Seconds = 1_000_000_000 };
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.SetTimes(P(secret), when, when, null)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Truncate(P(secret), 0, null)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.MakeDirectory(P(prefix + "/d"), 0x1FF)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.MakeNode(P(prefix + "/n"), 0x8000 | 0x1B6, 0)));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.RemoveDirectory(P(prefix + "/sub"))));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Symlink(P("/etc/passwd"), P(prefix + "/l"))));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.ReadLink(P(prefix + "/link"), new byte[256])));
            Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => OpenDirectory(fs, prefix + "/sub")));
            Assert.Equal(before, Snapshot(Outside));
        }

        // The tree itself still works in the same mode.
        Assert.Equal("b", ReadAll(fs, "/b.txt"));
        fs.MakeDirectory(P("/deep/made"), 0x1ED);
        Assert.True(Directory.Exists(Path.Combine(Root, "deep", "made")));
        Assert.Equal(Errno.ENOENT, ErrnoCapture.Of(() => GetAttributes(fs, "/deep/missing/x")));
        Assert.Equal(Errno.ENOTDIR, ErrnoCapture.Of(() => GetAttributes(fs, "/b.txt/x")));
        Assert.Equal(Errno.EISDIR, ErrnoCapture.Of(() => Open(fs, "/deep", LibC.O_WRONLY)));
        Assert.Equal(before, Snapshot(Outside));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FileSwappedForASymlink_IsNeverFollowed(bool walk)
    {
        Populate(Root);
        using var fs = DirectoryOverlayFileSystem.Open(Root);
        fs.Directory.ResolveByWalking = walk;
        File.Delete(Path.Combine(Root, "b.txt"));
        File.CreateSymbolicLink(Path.Combine(Root, "b.txt"), Path.Combine(Outside, "inner.txt"));
        string before = Snapshot(Outside);

        Assert.Equal(Errno.EOPNOTSUPP, ErrnoCapture.Of(() => fs.ChangeMode(P("/b.txt"), 0x1FF, null))); // as lchmod on Linux
        Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => Open(fs, "/b.txt", LibC.O_RDWR)));
        Assert.Equal(Errno.ELOOP, ErrnoCapture.Of(() => fs.Truncate(P("/b.txt"), 0, null)));
        fs.ChangeOwner(P("/b.txt"), 12345, 12345, null); // the link itself (lchown)
        var when = new Timespec { Seconds = 1_000_000_000 };
        fs.SetTimes(P("/b.txt"), when, when, null); // the link itself
        Stat st = default;
        fs.GetAttributes(P("/b.txt"), null, ref st);
        Assert.Equal(LibC.S_IFLNK, st.Mode & LibC.S_IFMT);
        Assert.Equal(12345u, st.Uid);
        Assert.Equal(before, Snapshot(Outside));
    }

    [Fact]
    public void UnderlyingDirectoryOpens_DoNotFollowAnIntermediateSymlink()
    {
        Populate(Root);
        SwapForSymlink("a");
        string before = Snapshot(Outside);
        using var root = UnderlyingDirectory.Open(Root);
        foreach (bool walk in new[] { false, true })
        {
            root.ResolveByWalking = walk;
            var e = Assert.Throws<ErrnoException>(() => root.OpenFile("a/inner.txt", FileAccess.ReadWrite));
            Assert.Equal(Errno.ELOOP, e.Errno);
            Assert.Equal(Errno.ELOOP, Assert.Throws<ErrnoException>(() => root.OpenRegularFile("a/inner.txt")).Errno);
            Assert.Equal(Errno.ELOOP, Assert.Throws<ErrnoException>(() => root.OpenFile("a/new.txt", FileAccess.Write, FileMode.CreateNew)).Errno);
            Assert.Equal(Errno.EXDEV, Assert.Throws<ErrnoException>(() => root.OpenFile("../outside/inner.txt", FileAccess.Read)).Errno);
            using var ok = root.OpenRegularFile("deep/b/x.txt");
            Assert.Equal(1, RandomAccess.Read(ok, new byte[8], 0));
        }

        Assert.Equal(before, Snapshot(Outside));
    }

    [Fact]
    public void OpenRegularFile_RefusesAFifoWithoutBlocking()
    {
        Populate(Root);
        Assert.Equal(0, MakeFifo(Path.Combine(Root, "pipe.vhdx"), 0x1B6));
        using var root = UnderlyingDirectory.Open(Root);
        var open = Task.Run(() => root.OpenRegularFile("pipe.vhdx"));
        Assert.True(Finishes(open, TimeSpan.FromSeconds(10)), "opening a FIFO must not wait for a writer");
        var e = Assert.IsType<IOException>(open.Exception?.InnerException);
        Assert.Contains("pipe.vhdx: not a regular file", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void VirtualFileReplacedBetweenProbeAndOpen_IsNotOpenedWithTheOldInfo()
    {
        Populate(Root);
        File.WriteAllText(Path.Combine(Root, "disk.vhdx"), MarkerFileProvider.Content(4096));
        File.WriteAllText(Path.Combine(Root, "other.vhdx"), MarkerFileProvider.Content(8192));
        var provider = new SwappingProvider(new MarkerFileProvider(), () => File.Move(Path.Combine(Root, "other.vhdx"), Path.Combine(Root, "disk.vhdx"), overwrite: true));
        using var fs = DirectoryOverlayFileSystem.Open(Root, provider);
        Assert.Equal(Errno.ENOENT, ErrnoCapture.Of(() => Open(fs, "/disk.vhdx", LibC.O_RDONLY)));
        var fi = new FuseFileInfo { Flags = LibC.O_RDONLY };
        fs.Open(P("/disk.vhdx"), ref fi); // the next open sees the new file
        Stat st = default;
        fs.GetAttributes(new FusePath(null), fi.Fh, ref st);
        Assert.Equal(8192, st.Size);
        fs.Release(fi.Fh);
    }

    [Fact]
    public void ThroughAMount_ACachedDirectorySwappedForASymlinkLeadsNowhere_LegitSymlinksWork()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        Populate(Root);
        File.CreateSymbolicLink(Path.Combine(Root, "rel"), "deep/b/x.txt");
        File.CreateSymbolicLink(Path.Combine(Root, "reldir"), "deep");
        string mnt = _temp["mnt"];
        Directory.CreateDirectory(mnt);
        using var fs = DirectoryOverlayFileSystem.Open(Root);
        var log = new RecordingLog(output);
        // Long cache timeouts: the kernel keeps "a" as a directory after the swap, as in a race.
        var options = new FuseMountOptions { MountPoint = mnt, EntryTimeout = TimeSpan.FromMinutes(5), AttributeTimeout = TimeSpan.FromMinutes(5) };
        using var mount = new FuseMount(options, fs, log);
        mount.Start();
        try
        {
            Assert.True(Finishes(mount.Mounted, TimeSpan.FromSeconds(15)), "mount did not come up");

            // Legit symlinks: the kernel follows them; readlink and lstat show the link.
            Assert.Equal("x", File.ReadAllText(Path.Combine(mnt, "rel")));
            Assert.Equal("x", File.ReadAllText(Path.Combine(mnt, "reldir", "b", "x.txt")));
            Assert.Equal("deep/b/x.txt", new FileInfo(Path.Combine(mnt, "rel")).LinkTarget);
            Assert.Equal(LibC.S_IFLNK, LstatMode(Path.Combine(mnt, "rel")) & LibC.S_IFMT);
            File.CreateSymbolicLink(Path.Combine(mnt, "made-link"), "b.txt");
            Assert.Equal("b", File.ReadAllText(Path.Combine(mnt, "made-link")));
            Assert.Equal("b.txt", new FileInfo(Path.Combine(Root, "made-link")).LinkTarget);

            Assert.True(File.Exists(Path.Combine(mnt, "a", "inner.txt"))); // the kernel caches "a" and "a/inner.txt"
            SwapForSymlink("a");
            string before = Snapshot(Outside);
            string inner = Path.Combine(mnt, "a", "inner.txt");
            string secret = Path.Combine(mnt, "a", "secret");

            Assert.Equal(-Errno.ELOOP, LstatMode(secret)); // a lookup of a name the kernel does not know yet
            Assert.ThrowsAny<IOException>(() => File.ReadAllText(inner));
            Assert.ThrowsAny<IOException>(() => File.ReadAllText(secret));
            Assert.ThrowsAny<IOException>(() => File.WriteAllText(inner, "overwritten"));
            Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(mnt, "a", "new.txt"), "planted"));
            Assert.Equal(-Errno.ELOOP, Posix.Truncate(inner, 0));
            Assert.ThrowsAny<Exception>(() => File.SetUnixFileMode(inner, (UnixFileMode)0x1FF));
            Assert.Equal(-Errno.ELOOP, Chown(inner, 12345, 12345));
            Assert.ThrowsAny<IOException>(() => Directory.CreateDirectory(Path.Combine(mnt, "a", "d")));
            Assert.ThrowsAny<IOException>(() => File.Move(Path.Combine(mnt, "b.txt"), Path.Combine(mnt, "a", "b.txt")));
            Assert.ThrowsAny<IOException>(() => File.Delete(inner));
            Assert.Equal(before, Snapshot(Outside));
            Assert.Equal("b", File.ReadAllText(Path.Combine(Root, "b.txt")));
        }
        finally
        {
            mount.Unmount();
            if (!Finishes(mount.Completion, TimeSpan.FromSeconds(15)) || TestMount.IsMounted(mnt))
            {
                ExternalTool.Run("umount", ["-l", mnt], TimeSpan.FromSeconds(10));
            }
        }
    }

    /// <summary>The tree (b.txt, a/inner.txt, deep/b/x.txt) and the outside directory with files of the same names.</summary>
    private void Populate(string root)
    {
        Directory.CreateDirectory(Path.Combine(root, "a"));
        Directory.CreateDirectory(Path.Combine(root, "deep", "b"));
        File.WriteAllText(Path.Combine(root, "b.txt"), "b");
        File.WriteAllText(Path.Combine(root, "a", "inner.txt"), "user's own");
        File.WriteAllText(Path.Combine(root, "deep", "b", "x.txt"), "x");
        Directory.CreateDirectory(Path.Combine(Outside, "sub"));
        File.WriteAllText(Path.Combine(Outside, "inner.txt"), OutsideContent);
        File.WriteAllText(Path.Combine(Outside, "secret"), OutsideContent);
        File.CreateSymbolicLink(Path.Combine(Outside, "link"), "inner.txt");
        foreach (var f in new[] { "inner.txt", "secret" })
        {
            File.SetUnixFileMode(Path.Combine(Outside, f), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.SetLastWriteTimeUtc(Path.Combine(Outside, f), new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        }
    }

    /// <summary>Replaces the directory <paramref name="relative"/> of the tree by a symlink to the outside directory.</summary>
    private void SwapForSymlink(string relative)
    {
        string path = Path.Combine(Root, relative);
        Directory.Move(path, path + ".moved");
        File.CreateSymbolicLink(path, Outside);
    }

    /// <summary>Every entry of <paramref name="directory"/>: name, type, mode, owner, size, mtime, content hash.</summary>
    private static string Snapshot(string directory)
    {
        var lines = new StringBuilder();
        foreach (var entry in Directory.GetFileSystemEntries(directory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(entry);
            Stat st = Lstat(entry);
            string hash = info.LinkTarget == null && File.Exists(entry) ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(entry))) : info.LinkTarget ?? "dir";
            lines.AppendLine($"{Path.GetRelativePath(directory, entry)} {st.Mode:x} {st.Uid}:{st.Gid} {st.Size} {st.ModifyTime.Seconds}.{st.ModifyTime.Nanoseconds} {hash}");
        }

        return lines.ToString();
    }

    private FusePath P(string path)
    {
        nint p = Marshal.StringToCoTaskMemUTF8(path);
        _paths.Add(p);
        return new FusePath((byte*)p);
    }

    private void GetAttributes(DirectoryOverlayFileSystem fs, string path)
    {
        Stat st = default;
        fs.GetAttributes(P(path), null, ref st);
    }

    private void Open(DirectoryOverlayFileSystem fs, string path, int flags)
    {
        var fi = new FuseFileInfo { Flags = flags };
        fs.Open(P(path), ref fi);
        fs.Release(fi.Fh);
    }

    private void Create(DirectoryOverlayFileSystem fs, string path)
    {
        var fi = new FuseFileInfo { Flags = LibC.O_WRONLY };
        fs.Create(P(path), 0x1B6, ref fi);
        fs.Release(fi.Fh);
    }

    private void OpenDirectory(DirectoryOverlayFileSystem fs, string path)
    {
        var fi = default(FuseFileInfo);
        fs.OpenDirectory(P(path), ref fi);
        fs.ReleaseDirectory(fi.Fh);
    }

    private string ReadAll(DirectoryOverlayFileSystem fs, string path)
    {
        var fi = new FuseFileInfo { Flags = LibC.O_RDONLY };
        fs.Open(P(path), ref fi);
        var buffer = new byte[4096];
        int n = fs.Read(fi.Fh, buffer, 0);
        fs.Release(fi.Fh);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Whether <paramref name="task"/> ends (in any way) within <paramref name="timeout"/>.</summary>
    private static bool Finishes(Task task, TimeSpan timeout) => ((IAsyncResult)task).AsyncWaitHandle.WaitOne(timeout);

    private static Stat Lstat(string path)
    {
        Stat st;
        return LstatNative(path, &st) == 0 ? st : throw new IOException($"{path}: lstat failed ({Marshal.GetLastPInvokeError()})");
    }

    /// <summary>st_mode of lstat(2), or -errno.</summary>
    private static long LstatMode(string path)
    {
        Stat st;
        return LstatNative(path, &st) == 0 ? st.Mode : -Marshal.GetLastPInvokeError();
    }

    private static int Chown(string path, uint uid, uint gid) => ChownNative(path, uid, gid) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    [DllImport("libc.so.6", EntryPoint = "lstat", SetLastError = true)]
    private static extern int LstatNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, Stat* buf);

    [DllImport("libc.so.6", EntryPoint = "chown", SetLastError = true)]
    private static extern int ChownNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint uid, uint gid);

    [DllImport("libc.so.6", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MakeFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    /// <summary>A provider that replaces the file right after its first probe (the race between stat and open).</summary>
    private sealed class SwappingProvider(MarkerFileProvider inner, Action swap) : IVirtualFileProvider
    {
        private int _swapped;

        public VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
        {
            var info = inner.Probe(directory, relativePath, stat);
            if (Interlocked.Exchange(ref _swapped, 1) == 0)
            {
                swap();
            }

            return info;
        }

        public BackupFuse.Core.IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write) =>
            inner.Open(directory, relativePath, stat, write);
    }
}
