using BackupFuse.Fuse.Overlay;

namespace BackupFuse.Fuse.Tests;

/// <summary>The one exception → errno table, and that it logs once with the operation and the path.</summary>
public sealed class ErrnoTests
{
    public static TheoryData<Exception, int> Cases => new()
    {
        { new FileNotFoundException("x"), Errno.ENOENT },
        { new DirectoryNotFoundException("x"), Errno.ENOENT },
        { new UnauthorizedAccessException("x"), Errno.EACCES },
        { new InvalidDataException("x"), Errno.EIO },
        { new IOException("x"), Errno.EIO },
        { new EndOfStreamException("x"), Errno.EIO },
        { new NotSupportedException("x"), Errno.EROFS },
        { new ArgumentOutOfRangeException("x"), Errno.EINVAL },
        { new ArgumentException("x"), Errno.EINVAL },
        { new OperationCanceledException("x"), Errno.EINTR },
        { new ErrnoException(Errno.ENOTEMPTY, "rmdir"), Errno.ENOTEMPTY },
        { new ErrnoException(Errno.EFBIG, "write"), Errno.EFBIG },
        { new InvalidOperationException("bug"), Errno.EIO },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void From_MapsTheExceptionType(Exception exception, int errno)
    {
        Assert.Equal(errno, Errno.Of(exception));
        var lines = new List<(FuseLogLevel, string)>();
        var log = FuseLog.From((level, message, _) => lines.Add((level, message)), FuseLogLevel.Debug);
        Assert.Equal(-errno, Errno.From(exception, log, "open", "/vm/disk.vhdx"));
        var (_, line) = Assert.Single(lines);
        Assert.StartsWith("open /vm/disk.vhdx: " + Errno.Name(errno), line);
    }

    [Fact]
    public void From_LogsExpectedErrnosAtDebug_AndSurprisesAtError()
    {
        var lines = new List<FuseLogLevel>();
        var log = FuseLog.From((level, _, _) => lines.Add(level), FuseLogLevel.Debug);
        Errno.From(new ErrnoException(Errno.ENOENT, "stat"), log, "getattr", "/missing");
        Errno.From(new InvalidDataException("corrupt"), log, "read", null);
        Errno.From(new NullReferenceException(), log, "read", null);
        Assert.Equal([FuseLogLevel.Debug, FuseLogLevel.Warning, FuseLogLevel.Error], lines);
    }

    [Fact]
    public void CountAllocatedBytes_CountsOnlyData()
    {
        Assert.Equal(512 * 1024, VirtualFiles.CountAllocatedBytes(MarkerFileProvider.Sparse(1024 * 1024)));
        Assert.Equal(0, VirtualFiles.CountAllocatedBytes(new BackupFuse.Core.ZeroSource(1 << 20)));
        Assert.Equal(0, VirtualFiles.CountAllocatedBytes(new BackupFuse.Core.MemorySource(1 << 20))); // all Unallocated
    }
}
