using BackupFuse.BackupImage.Storage.Caching;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests.Caching;

/// <summary>Which directories the persistent cache takes as its own.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CacheDirectoryTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfcachedir");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ADirectoryOthersUseIsRefusedAndLeftAsItWas()
    {
        // --cache-dir /tmp (or /var/cache): before, the cache chmod'ed it to 0700, which locked every other user out.
        string shared = Directory.CreateDirectory(_dir["shared"]).FullName;
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite |
            UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute | UnixFileMode.StickyBit;
        File.SetUnixFileMode(shared, mode);

        var e = Assert.Throws<IOException>(() => ImageCache.Open(shared).Dispose());
        Assert.Contains("others can use it", e.Message, StringComparison.Ordinal);
        Assert.Equal(mode, File.GetUnixFileMode(shared));
        Assert.Empty(Directory.GetFileSystemEntries(shared));
    }

    [Fact]
    public void AMissingDirectoryIsCreatedPrivate()
    {
        string path = _dir["made/here"];
        using (ImageCache.Open(path))
        {
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(path));
    }
}
