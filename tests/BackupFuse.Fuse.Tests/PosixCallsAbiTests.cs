using BackupFuse.Core.Native;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// Core.Native.PosixCalls, the portable libc wrappers of the image readers, the cache and the CLI, against this
/// machine's libc: canonical flags, struct stat and errno come back right, and the descriptor's path is the real one.
/// (On linux-x64 every translation is the identity; the other platforms' tables are NativeAbiTests' subject.)
/// </summary>
public sealed class PosixCallsAbiTests : IDisposable
{
    private readonly TempDirectory _dir = new("bf-posix");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void StatAndFstatReportTheFileInTheCanonicalLayout()
    {
        string path = _dir["file"];
        File.WriteAllBytes(path, new byte[12345]);
        Assert.True(PosixCalls.Stat(path, out var byPath));
        Assert.Equal(12345, byPath.Size);
        Assert.Equal(0x8000u, byPath.Mode & 0xF000);
        Assert.Equal(1UL, byPath.LinkCount);
        Assert.Equal(Fuse.Overlay.UnderlyingDirectory.CurrentUserId, byPath.Uid);
        Assert.Equal(File.GetLastWriteTimeUtc(path), DateTime.UnixEpoch.AddSeconds(byPath.ModifySeconds).AddTicks(byPath.ModifyNanoseconds / 100));

        int fd = PosixCalls.Open(path, PosixCalls.ORdOnly | PosixCalls.OCloExec);
        Assert.True(fd >= 0, PosixCalls.Describe(PosixCalls.LastErrno()));
        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        Assert.True(PosixCalls.Fstat(fd, out var byFd));
        Assert.Equal(byPath.Inode, byFd.Inode);
        Assert.Equal(byPath.Device, byFd.Device);
        Assert.Equal(path, PosixCalls.DescriptorPath(fd));
    }

    [Fact]
    public void NoFollowAndDirectoryFlagsRefuseWithTheCanonicalErrno()
    {
        Directory.CreateDirectory(_dir["real"]);
        File.CreateSymbolicLink(_dir["link"], _dir["real"]);
        File.WriteAllText(_dir["plain"], "x");

        Assert.Equal(-1, PosixCalls.Open(_dir["link"], PosixCalls.ORdOnly | PosixCalls.ONoFollow));
        Assert.Equal(Errno.ELOOP, PosixCalls.LastErrno());
        Assert.Equal(-1, PosixCalls.Open(_dir["link"], PosixCalls.ORdOnly | PosixCalls.ODirectory | PosixCalls.ONoFollow));
        Assert.Equal(Errno.ENOTDIR, PosixCalls.LastErrno()); // Linux reports a symlink met with O_DIRECTORY|O_NOFOLLOW so
        Assert.Equal(-1, PosixCalls.OpenAt(PosixCalls.AtFdCwd, _dir["plain"], PosixCalls.ORdOnly | PosixCalls.ODirectory));
        Assert.Equal(Errno.ENOTDIR, PosixCalls.LastErrno());
        Assert.Equal(-1, PosixCalls.Open(_dir["missing"], PosixCalls.ORdOnly));
        Assert.Equal(Errno.ENOENT, PosixCalls.LastErrno());
        Assert.Contains("No such file", PosixCalls.Describe(Errno.ENOENT), StringComparison.OrdinalIgnoreCase);

        using var dir = PosixCalls.OpenAt(null, _dir["real"], PosixCalls.ORdOnly | PosixCalls.ODirectory | PosixCalls.ONoFollow | PosixCalls.OCloExec);
        Assert.False(dir.IsInvalid);
        Assert.Equal(_dir["real"], PosixCalls.DescriptorPath((int)dir.DangerousGetHandle()));
    }

    [Fact]
    public void CreateRelativeToADirectoryPassesTheModeAndStatusFlagsCanBeCleared()
    {
        Directory.CreateDirectory(_dir["d"]);
        using var dir = PosixCalls.OpenAt(null, _dir["d"], PosixCalls.ORdOnly | PosixCalls.ODirectory | PosixCalls.OCloExec);
        using var file = PosixCalls.OpenAt(dir, "new", PosixCalls.OWrOnly | PosixCalls.OCreat | PosixCalls.OExcl | PosixCalls.ONonBlock | PosixCalls.OCloExec, 0x1A0 /* 0640 */);
        Assert.False(file.IsInvalid, PosixCalls.Describe(PosixCalls.LastErrno()));
        Assert.True(PosixCalls.Fstat((int)file.DangerousGetHandle(), out var st));
        Assert.Equal(0x1A0u, st.Mode & 0x1FF);
        Assert.Equal(0, PosixCalls.SetStatusFlags((int)file.DangerousGetHandle(), 0));

        using var again = PosixCalls.OpenAt(dir, "new", PosixCalls.OWrOnly | PosixCalls.OCreat | PosixCalls.OExcl, 0x1A0);
        Assert.True(again.IsInvalid);
        Assert.Equal(Errno.EEXIST, PosixCalls.LastErrno());
    }
}
