using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Chains are resolved by identity, never by stored paths: the catalog reads the 512-byte header of every *.bfi
//   directly inside each search directory (not recursive) and maps image id -> file. A chain may span several
//   directories (disjoint media).
// - The scan is lazy (first lookup) and cached; Refresh rescans. Files that are not valid images are skipped and
//   listed in Problems, so one bad file does not hide the others. A missing search directory is a problem, not an
//   error: the error comes later, naming the image that could not be found and the directories searched.
// - The same id in two files (a copy on other media) resolves to the first one found, in search-directory order,
//   then by file name.
// - Thread-safe: the scan result is an immutable snapshot swapped in under a lock.

/// <summary>A file found by a catalog scan, with its header.</summary>
public sealed record CatalogEntry(string Path, ImageHeader Header)
{
    /// <summary>The image's identity.</summary>
    public Guid Id => Header.ImageId;

    /// <summary>The parent's identity (<see cref="Guid.Empty"/> for a full backup).</summary>
    public Guid ParentId => Header.ParentId;
}

/// <summary>A file or directory the catalog skipped, and why.</summary>
public sealed record CatalogProblem(string Path, string Reason);

/// <summary>Finds backup images by identity across one or more search directories, reading only their headers.</summary>
public sealed class ImageCatalog
{
    private readonly object _lock = new();
    private Snapshot? _snapshot;

    /// <summary>A catalog over <paramref name="searchDirectories"/> (scanned on first use).</summary>
    public ImageCatalog(IEnumerable<string> searchDirectories)
    {
        ArgumentNullException.ThrowIfNull(searchDirectories);
        SearchDirectories = [.. searchDirectories.Select(System.IO.Path.GetFullPath).Distinct()];
    }

    /// <summary>The directories searched, in order.</summary>
    public IReadOnlyList<string> SearchDirectories { get; }

    /// <summary>Every image found.</summary>
    public IReadOnlyList<CatalogEntry> Entries => Scan().Entries;

    /// <summary>Files and directories that were skipped, with the reason.</summary>
    public IReadOnlyList<CatalogProblem> Problems => Scan().Problems;

    /// <summary>The image with identity <paramref name="id"/>, or null.</summary>
    public CatalogEntry? Find(Guid id) => Scan().ById.GetValueOrDefault(id);

    /// <summary>Images whose parent is <paramref name="id"/>.</summary>
    public IReadOnlyList<CatalogEntry> ChildrenOf(Guid id) => [.. Scan().Entries.Where(e => e.ParentId == id)];

    /// <summary>Forgets the last scan; the next lookup scans again.</summary>
    public void Refresh()
    {
        lock (_lock)
        {
            _snapshot = null;
        }
    }

    private Snapshot Scan()
    {
        lock (_lock)
        {
            return _snapshot ??= BuildSnapshot();
        }
    }

    private Snapshot BuildSnapshot()
    {
        var entries = new List<CatalogEntry>();
        var problems = new List<CatalogProblem>();
        var byId = new Dictionary<Guid, CatalogEntry>();
        foreach (string dir in SearchDirectories)
        {
            string[] files;
            try
            {
                files = Directory.GetFiles(dir, "*.bfi", SearchOption.TopDirectoryOnly);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new CatalogProblem(dir, e.Message));
                continue;
            }

            Array.Sort(files, StringComparer.Ordinal);
            foreach (string file in files)
            {
                try
                {
                    var entry = new CatalogEntry(file, BackupImageFile.ReadHeader(file));
                    entries.Add(entry);
                    byId.TryAdd(entry.Id, entry);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    problems.Add(new CatalogProblem(file, e.Message));
                }
            }
        }

        return new Snapshot(entries, problems, byId);
    }

    private sealed record Snapshot(List<CatalogEntry> Entries, List<CatalogProblem> Problems, Dictionary<Guid, CatalogEntry> ById);
}
