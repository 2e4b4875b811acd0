namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Keeps a long-lived catalog (the daemon's) in step with its directories: an inotify watch (FileSystemWatcher) on
//   every search directory, not recursive, that calls NotifyChanged on any create, delete, rename or change. That only
//   drops the snapshot and counts a change, so a burst of events costs nothing until the next lookup.
// - Not the only defence: the catalog also rescans on a miss or a stale entry, so a lost event (inotify queue
//   overflow, a directory that could not be watched, a file system without inotify such as NFS) costs one rescan,
//   never a wrong answer. A watcher error therefore only counts as a change and carries on.
// - A search directory that does not exist (yet) is not watched; the rescans cover it.

/// <summary>Refreshes an <see cref="ImageCatalog"/> whenever a file in one of its directories changes (inotify).</summary>
public sealed class ImageCatalogWatcher : IDisposable
{
    private readonly List<FileSystemWatcher> _watchers = [];

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
                    NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.Attributes,
                };
                watcher.Created += (_, _) => catalog.NotifyChanged();
                watcher.Deleted += (_, _) => catalog.NotifyChanged();
                watcher.Renamed += (_, _) => catalog.NotifyChanged();
                watcher.Changed += (_, _) => catalog.NotifyChanged();
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
