using System.Runtime.InteropServices;
using System.Text;
using BackupFuse.Core.Native;
using BackupFuse.Fuse.Interop;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// The overlay's part of the native ABI (OverlayAbi) against the header numbers cited in OverlayAbi.cs, written out
/// here a second time (xnu bsd/sys/stdio.h RENAME_*, bsd/sys/dirent.h __DARWIN_STRUCT_DIRENTRY, bsd/sys/fcntl.h
/// O_SYMLINK/O_SEARCH/F_PREALLOCATE; glibc's struct dirent through the managed Dirent that StructLayoutTests checks
/// with gcc), and the overlay with the no-openat2 walk forced (the only path on macOS) doing what it does with
/// openat2: create, rename with RENAME_NOREPLACE/RENAME_EXCHANGE, readdir, pins of a FIFO and a symlink, utimens
/// with UTIME_OMIT.
/// </summary>
public sealed unsafe class OverlayAbiTests : IDisposable
{
    private const int DtFifo = 1; // DT_* are the same in glibc and xnu bsd/sys/dirent.h
    private const int DtReg = 8;
    private const int DtLnk = 10;

    [ThreadStatic]
    private static List<(string Name, ulong Inode, uint Type)>? listed;

    private readonly TempDirectory _temp = new("bf-overlayabi");
    private readonly List<nint> _paths = [];

    public void Dispose()
    {
        foreach (var p in _paths)
        {
            Marshal.FreeCoTaskMem(p);
        }

        _temp.Dispose();
    }

    [Fact]
    public void DarwinTable_IsTheCitedXnuNumbers()
    {
        foreach (var overlay in new[] { OverlayAbi.MacOSArm64, OverlayAbi.MacOSX64 })
        {
            Assert.False(overlay.HasOpenat2);
            Assert.Equal("renameatx_np", overlay.RenameEntryPoint);
            Assert.Equal(0x4, overlay.NativeRenameFlags(1)); // RENAME_NOREPLACE -> RENAME_EXCL 0x00000004
            Assert.Equal(0x2, overlay.NativeRenameFlags(2)); // RENAME_EXCHANGE -> RENAME_SWAP 0x00000002
            Assert.Equal(0x6, overlay.NativeRenameFlags(3));
            Assert.Equal(0, overlay.NativeRenameFlags(0));
            Assert.Equal(-1, overlay.NativeRenameFlags(4)); // RENAME_WHITEOUT: none on Darwin
            Assert.Equal(-1, overlay.NativeRenameFlags(8));
            Assert.Equal(new NativeField(0, 8), overlay.DirentInode); // d_ino __uint64_t
            Assert.Equal(new NativeField(20, 1), overlay.DirentType); // after d_seekoff u64, d_reclen u16, d_namlen u16
            Assert.Equal(21, overlay.DirentName);
            Assert.Equal(0x00200000, overlay.PinNativeFlags); // O_SYMLINK
            Assert.False(overlay.HasFallocate);
            Assert.False(overlay.HasFdatasync);
        }

        Assert.True(OverlayAbi.MacOSX64.Inode64Symbols); // readdir$INODE64 ...
        Assert.False(OverlayAbi.MacOSArm64.Inode64Symbols);
        Assert.Equal(0x40100000, OverlayAbi.DarwinOSearch); // O_EXEC 0x40000000 | O_DIRECTORY 0x00100000
        Assert.Equal(0x20000000, OverlayAbi.DarwinONoFollowAny);
        Assert.Equal(42, OverlayAbi.DarwinFPreallocate);
        Assert.Equal(NativeAbi.MacOSArm64.OpenFlags.ToNative(LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC),
            NativeAbi.MacOSArm64.OpenFlags.ToNative(LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC)); // the walk's O_PATH is dropped
        Assert.Equal(0x100000 | 0x100 | 0x1000000, NativeAbi.MacOSArm64.OpenFlags.ToNative(LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC));
    }

    [Fact]
    public void LinuxTable_IsGlibcsDirentAndRenameat2()
    {
        var overlay = OverlayAbi.Linux;
        Assert.True(overlay.HasOpenat2);
        Assert.Equal("renameat2", overlay.RenameEntryPoint);
        foreach (int flags in new[] { 0, 1, 2, 3, 4 })
        {
            Assert.Equal(flags, overlay.NativeRenameFlags(flags));
        }

        Assert.Equal(-1, overlay.NativeRenameFlags(8));
        Assert.Equal(Marshal.OffsetOf<Dirent>(nameof(Dirent.Inode)), (nint)overlay.DirentInode.Offset);
        Assert.Equal(Marshal.OffsetOf<Dirent>(nameof(Dirent.Type)), (nint)overlay.DirentType.Offset);
        Assert.Equal(Marshal.OffsetOf<Dirent>(nameof(Dirent.Name)), (nint)overlay.DirentName);
        Assert.Equal(0, overlay.PinNativeFlags);
        Assert.False(overlay.Inode64Symbols);
        Assert.Same(OverlayAbi.Linux, NativeAbi.LinuxX64.Overlay);
        Assert.Same(OverlayAbi.Linux, NativeAbi.LinuxArm64.Overlay);
        Assert.Same(OverlayAbi.MacOSArm64, NativeAbi.MacOSArm64.Overlay);
        Assert.Same(OverlayAbi.MacOSX64, NativeAbi.MacOSX64.Overlay);
        Assert.Same(OverlayAbi.Linux, NativeAbi.Current!.Overlay);
    }

    [Fact]
    public void DarwinDirent_IsReadAtTheCitedOffsets()
    {
        byte* record = stackalloc byte[64];
        new Span<byte>(record, 64).Fill(0xEE);
        *(ulong*)record = 0x1122334455667788; // d_ino
        *(ulong*)(record + 8) = 0x99; // d_seekoff
        *(ushort*)(record + 16) = 32; // d_reclen
        *(ushort*)(record + 18) = 5; // d_namlen
        record[20] = DtLnk; // d_type
        "hello\0"u8.CopyTo(new Span<byte>(record + 21, 6));

        LibC.DecodeDirent(OverlayAbi.MacOSX64, record, out ulong inode, out byte type, out byte* name);

        Assert.Equal(0x1122334455667788ul, inode);
        Assert.Equal(DtLnk, type);
        Assert.Equal("hello", Marshal.PtrToStringUTF8((nint)name));

        // The same bytes read as glibc's layout give something else: the layouts really differ.
        LibC.DecodeDirent(OverlayAbi.Linux, record, out _, out byte linuxType, out _);
        Assert.NotEqual(DtLnk, linuxType);
    }

    [Fact]
    public void UtimeSentinels_AreSpelledTheDarwinWayForUtimensat()
    {
        Timespec* times = stackalloc Timespec[2];
        Timespec* buffer = stackalloc Timespec[2];
        times[0] = new Timespec { Seconds = 7, Nanoseconds = (1L << 30) - 1 }; // canonical UTIME_NOW
        times[1] = new Timespec { Seconds = 8, Nanoseconds = (1L << 30) - 2 }; // canonical UTIME_OMIT
        Timespec* mac = LibC.NativeTimes(NativeAbi.MacOSArm64, times, buffer);
        Assert.Equal(-1, mac[0].Nanoseconds); // xnu bsd/sys/stat.h UTIME_NOW
        Assert.Equal(-2, mac[1].Nanoseconds); // UTIME_OMIT
        Assert.Equal(7, mac[0].Seconds);
        times[1].Nanoseconds = 123;
        Assert.Equal(123, LibC.NativeTimes(NativeAbi.MacOSX64, times, buffer)[1].Nanoseconds);
        Assert.True(LibC.NativeTimes(NativeAbi.LinuxX64, times, buffer) == times); // identity: passed through
    }

    [Fact]
    public void UnderlyingDirectory_IsServedOnThisAbi() => Assert.Null(UnderlyingDirectory.UnsupportedReason);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Overlay_WithAndWithoutOpenat2_CreatesRenamesListsPinsAndSetsTimes(bool walk)
    {
        string root = _temp["root"];
        Directory.CreateDirectory(Path.Combine(root, "d"));
        using var fs = DirectoryOverlayFileSystem.Open(root);
        fs.Directory.ResolveByWalking = walk;

        WriteNew(fs, "/d/f.txt", "first");
        WriteNew(fs, "/d/g.txt", "second");
        Assert.Equal(Errno.EEXIST, ErrnoCapture.Of(() => fs.Rename(P("/d/f.txt"), P("/d/g.txt"), 1))); // RENAME_NOREPLACE
        Assert.Equal("first", File.ReadAllText(Path.Combine(root, "d", "f.txt")));
        fs.Rename(P("/d/f.txt"), P("/d/g.txt"), 2); // RENAME_EXCHANGE
        Assert.Equal("second", File.ReadAllText(Path.Combine(root, "d", "f.txt")));
        Assert.Equal("first", File.ReadAllText(Path.Combine(root, "d", "g.txt")));
        Assert.Equal(Errno.EINVAL, ErrnoCapture.Of(() => fs.Rename(P("/d/f.txt"), P("/d/h.txt"), 8)));

        fs.Symlink(P("f.txt"), P("/d/l"));
        fs.MakeNode(P("/d/p"), 0x1000 | 0x1B6, 0); // a FIFO, 0666: the umask is undone through a pin of the FIFO
        Assert.Equal(0x1000u | 0x1B6, LstatMode(Path.Combine(root, "d", "p")));
        var chmod = Task.Run(() => fs.ChangeMode(P("/d/p"), 0x180, null)); // pinned again; must not wait for a writer
        Assert.True(((IAsyncResult)chmod).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10)), "a pin of a FIFO must not block");
        Assert.Null(chmod.Exception);
        Assert.Equal(0x1000u | 0x180, LstatMode(Path.Combine(root, "d", "p")));

        var entries = List(fs, "/d");
        Assert.Equal(["f.txt", "g.txt", "l", "p"], entries.Where(e => e.Name is not "." and not "..").Select(e => e.Name).Order().ToArray());
        Assert.Equal((uint)DtReg << 12, entries.Single(e => e.Name == "f.txt").Type);
        Assert.Equal((uint)DtLnk << 12, entries.Single(e => e.Name == "l").Type);
        Assert.Equal((uint)DtFifo << 12, entries.Single(e => e.Name == "p").Type);
        Assert.Equal(Inode(Path.Combine(root, "d", "g.txt")), entries.Single(e => e.Name == "g.txt").Inode);

        var accessBefore = File.GetLastAccessTimeUtc(Path.Combine(root, "d", "g.txt"));
        var omit = new Timespec { Nanoseconds = (1L << 30) - 2 }; // UTIME_OMIT
        var when = new Timespec { Seconds = 1_000_000_000 };
        fs.SetTimes(P("/d/g.txt"), omit, when, null);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_000_000_000).UtcDateTime, File.GetLastWriteTimeUtc(Path.Combine(root, "d", "g.txt")));
        Assert.Equal(accessBefore, File.GetLastAccessTimeUtc(Path.Combine(root, "d", "g.txt")));
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static int Collect(void* buffer, byte* name, Stat* st, long offset, int flags)
    {
        listed!.Add((Marshal.PtrToStringUTF8((nint)name)!, st->Inode, st->Mode));
        return 0;
    }

    private static List<(string Name, ulong Inode, uint Type)> List(DirectoryOverlayFileSystem fs, string path)
    {
        var fi = default(FuseFileInfo);
        nint p = Marshal.StringToCoTaskMemUTF8(path);
        try
        {
            fs.OpenDirectory(new FusePath((byte*)p), ref fi);
            listed = [];
            fs.ReadDirectory(fi.Fh, new DirectoryFiller(null, &Collect, NativeAbi.LinuxX64.Stat));
            fs.ReleaseDirectory(fi.Fh);
            return listed;
        }
        finally
        {
            Marshal.FreeCoTaskMem(p);
        }
    }

    private void WriteNew(DirectoryOverlayFileSystem fs, string path, string content)
    {
        var fi = new FuseFileInfo { Flags = LibC.O_WRONLY };
        fs.Create(P(path), 0x1A4, ref fi);
        fs.Write(fi.Fh, Encoding.UTF8.GetBytes(content), 0);
        fs.Release(fi.Fh);
    }

    private FusePath P(string path)
    {
        nint p = Marshal.StringToCoTaskMemUTF8(path);
        _paths.Add(p);
        return new FusePath((byte*)p);
    }

    private static uint LstatMode(string path)
    {
        Stat st;
        return LstatNative(path, &st) == 0 ? st.Mode : throw new IOException($"{path}: lstat failed");
    }

    private static ulong Inode(string path)
    {
        Stat st;
        return LstatNative(path, &st) == 0 ? st.Inode : throw new IOException($"{path}: lstat failed");
    }

    [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
    private static extern int LstatNative([MarshalAs(UnmanagedType.LPUTF8Str)] string path, Stat* buf);
}
