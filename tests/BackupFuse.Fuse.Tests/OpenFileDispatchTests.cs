using System.Runtime.InteropServices;
using BackupFuse.Core;
using BackupFuse.Fuse.Interop;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// Every operation FUSE can send on an open handle, called on DirectoryOverlayFileSystem directly (no mount, so also
/// the calls the kernel rarely forwards with a handle: chmod, chown, utimens), for a pass-through file and a virtual
/// file, with the exact errno of every refusal. Pins the behaviour of the per-handle dispatch.
/// </summary>
public sealed unsafe class OpenFileDispatchTests : IDisposable
{
    private const long MemorySize = 1024 * 1024;
    private const long PatternSize = 3 * 4096;
    private readonly TempDirectory _temp = new("bf-openfile");
    private readonly MarkerFileProvider _provider = new();
    private readonly List<nint> _paths = [];

    public OpenFileDispatchTests()
    {
        File.WriteAllText(_temp["notes.txt"], "plain file");
        File.WriteAllText(_temp["rw.vhdx"], MarkerFileProvider.Content(MemorySize, "memory"));
        File.WriteAllText(_temp["disk.vhdx"], MarkerFileProvider.Content(PatternSize));
    }

    [Fact]
    public void PassThroughHandle_ServesEveryOperationOnTheDescriptor()
    {
        using var fs = DirectoryOverlayFileSystem.Open(_temp.Path, _provider);
        ulong h = OpenFile(fs, "notes.txt", Posix.O_RDWR, out bool directIo);
        Assert.False(directIo); // the page cache is kept for pass-through files

        var buffer = new byte[100];
        Assert.Equal(10, fs.Read(h, buffer, 0));
        Assert.Equal("plain file"u8.ToArray(), buffer[..10]);
        Assert.Equal(5, fs.Read(h, buffer, 5));
        Assert.Equal(0, fs.Read(h, buffer, 10));
        Assert.Equal(5, fs.Write(h, "PLAIN"u8, 0));
        Assert.Equal("PLAIN file", File.ReadAllText(_temp["notes.txt"]));

        Stat st = default;
        fs.GetAttributes(new FusePath(null), h, ref st);
        Assert.Equal(10, st.Size);

        fs.Truncate(new FusePath(null), 4, h);
        Assert.Equal(4, new FileInfo(_temp["notes.txt"]).Length);
        fs.Allocate(h, 0, 0, 8192);
        Assert.Equal(8192, new FileInfo(_temp["notes.txt"]).Length);
        Assert.Equal(0, fs.Seek(h, 0, Posix.SEEK_DATA));
        Assert.Equal(Errno.ENXIO, ErrnoCapture.Of(() => fs.Seek(h, 1 << 20, Posix.SEEK_DATA)));

        fs.ChangeMode(new FusePath(null), 0x180, h); // 0600
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_temp["notes.txt"]));
        var when = new Timespec { Seconds = 1_000_000_000, Nanoseconds = 0 };
        fs.SetTimes(new FusePath(null), when, when, h);
        Assert.Equal(DateTime.UnixEpoch.AddSeconds(1_000_000_000), File.GetLastWriteTimeUtc(_temp["notes.txt"]));
        fs.ChangeOwner(new FusePath(null), uint.MaxValue, uint.MaxValue, h);

        fs.Flush(h);
        fs.Sync(h, dataOnly: false);
        fs.Sync(h, dataOnly: true);
        fs.Release(h);
    }

    [Fact]
    public void VirtualHandle_ServesTheSource_WithTheVirtualFileRules()
    {
        using var fs = DirectoryOverlayFileSystem.Open(_temp.Path, _provider);
        ulong h = OpenFile(fs, "rw.vhdx", Posix.O_RDWR, out bool directIo);
        Assert.True(directIo);

        Assert.Equal(5, fs.Write(h, "hello"u8, 4096));
        var memory = _provider.MemoryOf("rw.vhdx");
        var back = new byte[5];
        memory.Read(4096, back);
        Assert.Equal("hello"u8.ToArray(), back);
        var buffer = new byte[10];
        Assert.Equal(10, fs.Read(h, buffer, 4096));
        Assert.Equal("hello"u8.ToArray(), buffer[..5]);
        Assert.Equal(3, fs.Read(h, buffer, MemorySize - 3));   // EOF clamps to a short read
        Assert.Equal(0, fs.Read(h, buffer, MemorySize));
        Assert.Equal(Errno.EINVAL, ErrnoCapture.Of(() => fs.Read(h, buffer, -1)));
        Assert.Equal(Errno.EFBIG, ErrnoCapture.Of(() => fs.Write(h, new byte[10], MemorySize - 5)));
        Assert.Equal(Errno.EFBIG, ErrnoCapture.Of(() => fs.Write(h, new byte[1], -1)));

        Stat st = default;
        fs.GetAttributes(new FusePath(null), h, ref st);
        Assert.Equal(MemorySize, st.Size);
        Assert.Equal((MemorySize + 511) / 512, st.Blocks);
        Assert.NotEqual(0u, st.Mode & 0x80); // writable: the owner's write bit stays

        Assert.Equal(Errno.EPERM, ErrnoCapture.Of(() => fs.Truncate(new FusePath(null), 10, h)));
        fs.Truncate(new FusePath(null), MemorySize, h); // to its own size: a no-op
        Assert.Equal(Errno.EOPNOTSUPP, ErrnoCapture.Of(() => fs.Allocate(h, 0, 0, 10)));

        long firstData = FirstData(memory);
        Assert.Equal(firstData, fs.Seek(h, 0, Posix.SEEK_DATA));
        Assert.Equal(firstData == 0 ? memory.GetExtent(0, MemorySize).Length : 0, fs.Seek(h, 0, Posix.SEEK_HOLE));
        Assert.Equal(Errno.EINVAL, ErrnoCapture.Of(() => fs.Seek(h, 0, 0))); // SEEK_SET is the kernel's business
        Assert.Equal(Errno.EINVAL, ErrnoCapture.Of(() => fs.Seek(h, -1, Posix.SEEK_DATA)));
        Assert.Equal(Errno.ENXIO, ErrnoCapture.Of(() => fs.Seek(h, MemorySize, Posix.SEEK_HOLE)));

        // chmod and chown of a virtual file are presented (kept in memory), never applied to the plugin file underneath,
        // whose real owner decides what the plugin may serve; utimens reaches the file (through its O_PATH descriptor).
        string underlyingBefore = OwnerAndMode(_temp["rw.vhdx"]);
        fs.ChangeMode(new FusePath(null), 0x180, h);
        fs.ChangeOwner(new FusePath(null), 12345, uint.MaxValue, h);
        fs.GetAttributes(new FusePath(null), h, ref st);
        Assert.Equal((0x180u, 12345u), (st.Mode & 0xFFF, st.Uid));
        Assert.Equal(underlyingBefore, OwnerAndMode(_temp["rw.vhdx"]));
        Stat byPath = default;
        fs.GetAttributes(PathOf("rw.vhdx"), null, ref byPath);
        Assert.Equal((0x180u, 12345u, st.Gid), (byPath.Mode & 0xFFF, byPath.Uid, byPath.Gid));
        fs.ChangeOwner(PathOf("rw.vhdx"), uint.MaxValue, 23456, null); // by path (no handle): the same
        fs.ChangeMode(PathOf("rw.vhdx"), 0x1A0, null); // 0640
        fs.GetAttributes(new FusePath(null), h, ref st);
        Assert.Equal((0x1A0u, 12345u, 23456u), (st.Mode & 0xFFF, st.Uid, st.Gid));
        Assert.Equal(underlyingBefore, OwnerAndMode(_temp["rw.vhdx"]));
        var when = new Timespec { Seconds = 1_000_000_000, Nanoseconds = 0 };
        fs.SetTimes(new FusePath(null), when, when, h);
        Assert.Equal(DateTime.UnixEpoch.AddSeconds(1_000_000_000), File.GetLastWriteTimeUtc(_temp["rw.vhdx"]));

        fs.Flush(h);
        fs.Sync(h, dataOnly: true);
        fs.Release(h);
        Assert.Equal(Errno.EBADF, ErrnoCapture.Of(() => fs.Read(h, buffer, 0)));
        fs.Release(h); // a second release of the same handle is harmless
        Assert.Equal(MarkerFileProvider.Content(MemorySize, "memory"), File.ReadAllText(_temp["rw.vhdx"])); // plugin untouched
    }

    [Fact]
    public void ReadOnlyOpens_AndReadOnlyMounts_RefuseWithTheirErrno()
    {
        using (var fs = DirectoryOverlayFileSystem.Open(_temp.Path, _provider))
        {
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => OpenFile(fs, "disk.vhdx", Posix.O_RDWR, out _))); // source cannot write
            Assert.Equal(Errno.EPERM, ErrnoCapture.Of(() => OpenFile(fs, "rw.vhdx", Posix.O_RDWR | Posix.O_TRUNC, out _)));
            ulong h = OpenFile(fs, "disk.vhdx", Posix.O_RDONLY, out _);
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => fs.Write(h, "x"u8, 0)));
            var buffer = new byte[16];
            Assert.Equal(16, fs.Read(h, buffer, 0));
            var expected = new byte[16];
            MarkerFileProvider.Pattern(PatternSize).Read(0, expected);
            Assert.Equal(expected, buffer);
            fs.Flush(h);
            fs.Sync(h, dataOnly: false);
            fs.Release(h);
        }

        using (var fs = DirectoryOverlayFileSystem.Open(_temp.Path, _provider, readOnly: true))
        {
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => OpenFile(fs, "notes.txt", Posix.O_RDWR, out _)));
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => OpenFile(fs, "notes.txt", Posix.O_RDONLY | Posix.O_TRUNC, out _)));
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => OpenFile(fs, "rw.vhdx", Posix.O_RDWR, out _)));

            ulong plain = OpenFile(fs, "notes.txt", Posix.O_RDONLY, out _);
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => fs.Allocate(plain, 0, 0, 10)));
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => fs.Truncate(new FusePath(null), 0, plain)));
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => fs.ChangeMode(new FusePath(null), 0x1FF, plain)));
            fs.Release(plain);

            ulong virt = OpenFile(fs, "rw.vhdx", Posix.O_RDONLY, out _);
            Assert.Equal(Errno.EOPNOTSUPP, ErrnoCapture.Of(() => fs.Allocate(virt, 0, 0, 10))); // the virtual rule comes first
            Assert.Equal(Errno.EROFS, ErrnoCapture.Of(() => fs.Write(virt, "x"u8, 0)));
            fs.Release(virt);
        }

        Assert.Equal("plain file", File.ReadAllText(_temp["notes.txt"]));
    }

    public void Dispose()
    {
        foreach (var p in _paths)
        {
            Marshal.FreeCoTaskMem(p);
        }

        _temp.Dispose();
    }

    private static long FirstData(IBlockSource source)
    {
        for (long pos = 0; pos < source.Length;)
        {
            var e = source.GetExtent(pos, source.Length - pos);
            if (e.Kind == ExtentKind.Data)
            {
                return pos;
            }

            pos += e.Length;
        }

        return -1;
    }

    private static string OwnerAndMode(string path) => ExternalTool.Check("stat", "-c", "%u:%g:%a", path).StdOut.Trim();

    private FusePath PathOf(string relative)
    {
        nint p = Marshal.StringToCoTaskMemUTF8("/" + relative);
        _paths.Add(p);
        return new FusePath((byte*)p);
    }

    private ulong OpenFile(DirectoryOverlayFileSystem fs, string relative, int flags, out bool directIo)
    {
        var fi = new FuseFileInfo { Flags = flags };
        fs.Open(PathOf(relative), ref fi);
        directIo = fi.DirectIo;
        return fi.Fh;
    }
}
