using System.Diagnostics;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// Issue #10 items 3, 6, 7 at the catalog level: only real paths the admit rule accepts, never a hang on a FIFO,
/// images moved or renamed after a scan found again, and a generation that moves only when the files do.
/// </summary>
public sealed class ImageCatalogLookupTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-lookup");
    private readonly TempDirectory _outside = new("bfi-outside");
    private readonly string _disk;

    public ImageCatalogLookupTests()
    {
        _disk = _dir["disk.raw"];
        MixedDataGenerator.WriteFile(_disk, 2 << 20, seed: 5);
    }

    public void Dispose()
    {
        _dir.Dispose();
        _outside.Dispose();
    }

    private string Root => Directory.CreateDirectory(_dir["root"]).FullName;

    private string? Admit(string realPath) => realPath.StartsWith(Root + "/", StringComparison.Ordinal) ? null : "outside the root";

    [Fact]
    public void ASymlinkToAnOutsideImageIsNotAdmittedAndSaysWhy()
    {
        string full = _outside["full.bfi"];
        var id = BackupWriter.Backup(_disk, full, new BackupOptions()).ImageId;
        File.CreateSymbolicLink(Path.Combine(Root, "link.bfi"), full);

        var catalog = new ImageCatalog([Root], Admit);

        Assert.Null(catalog.Find(id));
        Assert.Empty(catalog.Entries);
        var refused = catalog.RefusedImage(id);
        Assert.NotNull(refused);
        Assert.Equal(Path.Combine(Root, "link.bfi"), refused.Path);
        Assert.Contains("outside the root", refused.Reason, StringComparison.Ordinal);

        // Without the rule (the old behaviour) the same catalog hands out the outside file.
        Assert.Equal(id, new ImageCatalog([Root]).Find(id)?.Id);
    }

    [Fact]
    public void AParentReachableOnlyThroughAnOutsideSymlinkIsNotFound()
    {
        string full = _outside["full.bfi"];
        BackupWriter.Backup(_disk, full, new BackupOptions());
        File.CreateSymbolicLink(Path.Combine(Root, "full.bfi"), full);
        string inc = Path.Combine(Root, "inc.bfi");
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(_disk, inc, new BackupOptions { Parent = parent });
        }

        var e = Assert.Throws<FileNotFoundException>(() => BackupChain.Open(inc, new ImageCatalog([Root], Admit)));
        Assert.Contains("was not found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenReportsTheRealPathOfTheFileActuallyOpened()
    {
        string full = _outside["full.bfi"];
        BackupWriter.Backup(_disk, full, new BackupOptions());
        string link = Path.Combine(Root, "link.bfi");
        File.CreateSymbolicLink(link, full);

        using var image = BackupImageFile.Open(link);

        Assert.Equal(link, image.Path);
        Assert.NotNull(image.Status);
        Assert.Equal(full, image.Status.RealPath);
        Assert.True(image.Status.Stat.IsRegularFile);
        Assert.False(image.IsRemote);
    }

    [Fact]
    public async Task AFifoNamedBfiIsAProblemNotAHang()
    {
        string fifo = Path.Combine(Root, "fifo.bfi");
        ExternalTool.Check("mkfifo", fifo);
        var id = BackupWriter.Backup(_disk, Path.Combine(Root, "good.bfi"), new BackupOptions()).ImageId;
        try
        {
            var catalog = new ImageCatalog([Root]);
            var scan = Task.Run(() => catalog.Find(id));
            Assert.True(scan == await Task.WhenAny(scan, Task.Delay(TimeSpan.FromSeconds(20))), "the catalog scan hangs on a FIFO");
            Assert.NotNull(await scan);
            var problem = Assert.Single(catalog.Problems);
            Assert.Equal(fifo, problem.Path);
            Assert.Contains("not a regular file", problem.Reason, StringComparison.Ordinal);

            var open = Task.Run(() => Record.Exception(() => BackupImageFile.Open(fifo)));
            Assert.True(open == await Task.WhenAny(open, Task.Delay(TimeSpan.FromSeconds(20))), "opening a FIFO as an image hangs");
            var e = Assert.IsAssignableFrom<IOException>(await open);
            Assert.Contains($"{fifo}: not a regular file (it is a FIFO)", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            ReleaseFifoReaders(fifo);
        }
    }

    [Fact]
    public void ADirectoryNamedBfiIsRefusedWithoutOpeningIt()
    {
        string dir = Directory.CreateDirectory(Path.Combine(Root, "dir.bfi")).FullName;
        var e = Assert.IsAssignableFrom<IOException>(Record.Exception(() => BackupImageFile.ReadHeader(dir)));
        Assert.Contains("not a regular file (it is a directory)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnImageRenamedAfterTheScanIsFoundAgain()
    {
        string first = Path.Combine(Root, "a.bfi");
        var id = BackupWriter.Backup(_disk, first, new BackupOptions()).ImageId;
        var catalog = new ImageCatalog([Root]);
        Assert.Equal(first, catalog.Find(id)?.Path);

        string renamed = Path.Combine(Root, "b.bfi");
        File.Move(first, renamed);

        Assert.Equal(renamed, catalog.Find(id)?.Path);
    }

    [Fact]
    public void AnImageMovedToAnotherSearchDirectoryAfterTheScanIsFoundAgain()
    {
        string second = Directory.CreateDirectory(_dir["second"]).FullName;
        string full = Path.Combine(Root, "full.bfi");
        BackupWriter.Backup(_disk, full, new BackupOptions());
        string inc = Path.Combine(Root, "inc.bfi");
        using (var parent = BackupChain.Open(full))
        {
            BackupWriter.Backup(_disk, inc, new BackupOptions { Parent = parent });
        }

        var catalog = new ImageCatalog([Root, second]);
        Assert.Equal(2, catalog.Entries.Count);
        File.Move(full, Path.Combine(second, "moved.bfi"));

        using var chain = BackupChain.Open(inc, catalog);
        Assert.Equal(Path.Combine(second, "moved.bfi"), chain.Layers[1].Path);
        ImageTestKit.AssertSameContent(_disk, chain.CreateSource());
    }

    [Fact]
    public void AFileReplacedUnderTheSameNameIsNotReturnedForTheOldIdentity()
    {
        string path = Path.Combine(Root, "a.bfi");
        var oldId = BackupWriter.Backup(_disk, path, new BackupOptions()).ImageId;
        var catalog = new ImageCatalog([Root]);
        Assert.NotNull(catalog.Find(oldId));

        File.Delete(path);
        var newId = BackupWriter.Backup(_disk, path, new BackupOptions()).ImageId;

        Assert.Null(catalog.Find(oldId));
        Assert.Equal(path, catalog.Find(newId)?.Path);
    }

    [Fact]
    public void GenerationMovesWhenTheFilesChangeNotOnEveryRescan()
    {
        var id = BackupWriter.Backup(_disk, Path.Combine(Root, "a.bfi"), new BackupOptions()).ImageId;
        var catalog = new ImageCatalog([Root]);
        Assert.NotNull(catalog.Find(id));
        long g0 = catalog.Generation;

        // Misses rescan, but find the same files: no change.
        Assert.Null(catalog.Find(Guid.NewGuid()));
        Assert.Null(catalog.Find(Guid.NewGuid()));
        Assert.Equal(g0, catalog.Generation);

        var id2 = BackupWriter.Backup(_disk, Path.Combine(Root, "b.bfi"), new BackupOptions()).ImageId;
        Assert.NotNull(catalog.Find(id2));
        Assert.True(catalog.Generation > g0);

        long g1 = catalog.Generation;
        catalog.NotifyChanged();
        Assert.True(catalog.Generation > g1);
    }

    [Fact]
    public void TheWatcherCountsAChangeWhenAnImageArrives()
    {
        var catalog = new ImageCatalog([Root]);
        Assert.Empty(catalog.Entries);
        using var watcher = new ImageCatalogWatcher(catalog);
        Assert.Equal(1, watcher.WatchedDirectories);
        long g0 = catalog.Generation;

        BackupWriter.Backup(_disk, _dir["staging.bfi"], new BackupOptions());
        File.Move(_dir["staging.bfi"], Path.Combine(Root, "arrived.bfi"));

        var clock = Stopwatch.StartNew();
        while (catalog.Generation == g0 && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            Thread.Sleep(20);
        }

        Assert.True(catalog.Generation > g0, "no inotify event reached the catalog");
        Assert.Single(catalog.Entries);
    }

    /// <summary>Unblocks any reader stuck in open(2) on the FIFO (so a failing test leaves no hung thread).</summary>
    private static void ReleaseFifoReaders(string fifo) =>
        ExternalTool.Run("timeout", ["2", "sh", "-c", ": > \"$0\"", fifo], TimeSpan.FromSeconds(10));
}
