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

    [Fact]
    public void ALockHeldForAMomentIsWaitedForAndOneHeldOnIsNot()
    {
        // A daemon just exiting (or a child between fork and exec sharing the descriptor) holds the lock briefly: the
        // next open waits for it instead of running on a private cache; a lock another process keeps is not taken.
        string path = _dir["cache"];
        using (ImageCache.Open(path))
        {
        }

        string lockFile = Path.Combine(path, "lock");
        using (var brief = System.Diagnostics.Process.Start("flock", [lockFile, "sleep", "0.6"]))
        {
            Thread.Sleep(300); // flock has taken it
            using var taken = CacheDirectory.TryOpenLocked(path);
            Assert.NotNull(taken);
            brief.WaitForExit();
        }

        using (var kept = System.Diagnostics.Process.Start("flock", [lockFile, "sleep", "6"]))
        {
            Thread.Sleep(300);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.Null(CacheDirectory.TryOpenLocked(path));
            Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 4);
            kept.Kill(entireProcessTree: true);
            kept.WaitForExit();
        }
    }
}
