namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Keeps a long-lived catalog (the daemon's) in step with its directories: an inotify watch (FileSystemWatcher) on
//   every search directory, not recursive, that calls NotifyChanged when a *.bfi name appears, goes or is renamed
//   (not on writes: a backup streaming into "x.bfi.partial" must not drop the snapshot on every write; an image
//   rewritten in place is caught by the stale-entry check on lookup). That only drops the snapshot and counts a
//   change, so a burst of events costs nothing until the next lookup.
// - Not the only defence: the catalog also rescans on a miss or a stale entry, so a lost event (inotify queue
//   overflow, a directory that could not be watched, a file system without inotify such as NFS) costs one rescan,
//   never a wrong answer. A watcher error therefore only counts as a change and carries on.
// - A search directory that does not exist (yet) is not watched; the rescans cover it.

/// <summary>Refreshes an <see cref="ImageCatalog"/> whenever a file in one of its directories changes (inotify).</summary>
public sealed class ImageCatalogWatcher : IDisposable
{
    private readonly List<FileSystemWatcher> _watchers = [];

    private static void NotifyIfImage(ImageCatalog catalog, string? name)
    {
        if (name?.EndsWith(".bfi", StringComparison.Ordinal) == true)
        {
            catalog.NotifyChanged();
        }
    }

    /// <summary>Starts watching every search directory of <paramref name="catalog"/>.</summary>
    public ImageCatalogWatcher(ImageCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        foreach (string dir in catalog.SearchDirectories)
        {
            FileSystemWatcher? watcher = null;
            try
            {
                watcher = new FileSystemWatcher(dir)
                {
                    IncludeSubdirectories = false,
                    NotifyFilter = NotifyFilters.FileName,
                };
                watcher.Created += (_, e) => NotifyIfImage(catalog, e.Name);
                watcher.Deleted += (_, e) => NotifyIfImage(catalog, e.Name);
                watcher.Renamed += (_, e) =>
                {
                    NotifyIfImage(catalog, e.OldName);
                    NotifyIfImage(catalog, e.Name);
                };
                watcher.Error += (_, _) => catalog.NotifyChanged();
                watcher.EnableRaisingEvents = true;
                _watchers.Add(watcher);
                watcher = null;
            }
            catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                // Not watched: lookups still rescan on a miss (see the design notes).
            }
            finally
            {
                watcher?.Dispose();
            }
        }
    }

    /// <summary>Number of directories actually watched.</summary>
    public int WatchedDirectories => _watchers.Count;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var w in _watchers)
        {
            w.Dispose();
        }

        _watchers.Clear();
    }
}
