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
        Assert.Contains("others use it", e.Message, StringComparison.Ordinal);
        Assert.Equal(mode, File.GetUnixFileMode(shared));
        Assert.Empty(Directory.GetFileSystemEntries(shared));
    }

    [Fact]
    public void AnEmptyDirectoryMadeBeforehandIsTakenAndMadePrivateButNotOneWithOtherFiles()
    {
        // `mkdir /srv/cache` (0755) then --cache-dir /srv/cache: taken; /var/cache-like (0755, other files): refused.
        var open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
            UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        string empty = Directory.CreateDirectory(_dir["empty"]).FullName;
        File.SetUnixFileMode(empty, open);
        using (ImageCache.Open(empty))
        {
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(empty));

        string busy = Directory.CreateDirectory(_dir["busy"]).FullName;
        File.WriteAllText(Path.Combine(busy, "someone-elses"), "x");
        File.SetUnixFileMode(busy, open);
        Assert.Throws<IOException>(() => ImageCache.Open(busy).Dispose());
        Assert.Equal(open, File.GetUnixFileMode(busy));
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
