using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Chains are resolved by identity, never by stored paths: the catalog reads the 512-byte header of every *.bfi
//   directly inside each repository (IImageRepository: a local directory, an S3 prefix, a web directory; not
//   recursive) and maps image id -> address. A chain may span several repositories (disjoint media, local and remote
//   mixed). Headers of a remote repository are read in parallel (each is one request).
// - Admission (optional): a catalog built with an admit rule only lists local files whose REAL path (of the opened
//   descriptor, symlinks resolved by the kernel) passes it; the daemon admits only files inside its --images roots,
//   so an identity lookup (a plugin's moved image, every parent of a chain) can never reach a file outside them
//   through a symlink. A refused file is listed in Problems with its identity (read from the descriptor already
//   opened) so that the caller can say why an image was not found. Callers that open a found path must still check
//   the file they opened (BackupImageFile.Status): the path may have changed since the scan.
// - Only regular files are read, without ever blocking (UnixFile.OpenRegular): a FIFO, device or directory named
//   *.bfi is a problem, not a hang.
// - The scan is lazy (first lookup) and cached. Find rescans when the id is missing or when the file it has for the
//   id is no longer the file scanned (moved, renamed, replaced: compared by device, inode, size and mtime), so
//   images moved while a mount is up are found again. Refresh drops the snapshot. Generation grows when a scan finds
//   other files than the scan before it (paths, identities, file versions, problems) and on every NotifyChanged
//   (ImageCatalogWatcher's inotify events), so that callers caching failures know when to retry; a rescan that finds
//   the same files does not change it (two failing lookups must not make each other retry for ever).
// - Files that are not valid images are skipped and listed in Problems, so one bad file does not hide the others.
//   A missing search directory is a problem, not an error: the error comes later, naming the image that could not
//   be found and the directories searched.
// - The same id in two files (a copy on other media, or a synthetic full written by merge next to the incremental it
//   reproduces: an identity names a disk state, docs/lifecycle.md) resolves to the preferred one: a full image before
//   a derived incremental before an incremental (the shorter chain), then the first one found, in search-directory
//   order, then by file name. FindAll lists every file of an id in that order so a chain can fall back to another.
// - Thread-safe: the scan result is an immutable snapshot swapped in under a lock; the scan itself (I/O on every
//   image) runs outside the lock, so a slow file never blocks a lookup that has a snapshot. A scan that raced with a
//   Refresh is used by its caller but not cached.

/// <summary>A file found by a catalog scan, with its header; <paramref name="Path"/> is its address (a path or URL).</summary>
public sealed record CatalogEntry(string Path, ImageHeader Header)
{
    /// <summary>The repository the image was found in.</summary>
    public IImageRepository? Repository { get; init; }

    /// <summary>The image's identity.</summary>
    public Guid Id => Header.ImageId;

    /// <summary>The parent's identity (<see cref="Guid.Empty"/> for a full backup).</summary>
    public Guid ParentId => Header.ParentId;

    /// <summary>The local file that was scanned (real path, identity, owner, mode); null for a remote image.</summary>
    public ImageFileStatus? Status { get; init; }
}

/// <summary>A file or directory the catalog skipped, and why.</summary>
/// <param name="Path">The file or directory.</param>
/// <param name="Reason">Why it was skipped.</param>
/// <param name="ImageId">The identity of a valid image that the admit rule refused, else null.</param>
public sealed record CatalogProblem(string Path, string Reason, Guid? ImageId = null);

/// <summary>Finds backup images by identity across one or more search directories, reading only their headers.</summary>
public sealed class ImageCatalog
{
    private readonly object _lock = new();
    private readonly Func<string, string?>? _admit;
    private Snapshot? _snapshot;
    private long _generation;
    private long _epoch;
    private int _lastFingerprint;

    /// <summary>A catalog over the local <paramref name="searchDirectories"/> (scanned on first use).</summary>
    public ImageCatalog(IEnumerable<string> searchDirectories)
        : this(searchDirectories, null)
    {
    }

    /// <summary>
    /// A catalog over the local <paramref name="searchDirectories"/> that lists only files whose real path
    /// <paramref name="admitRealPath"/> accepts: it returns null to admit, else the reason for refusing.
    /// </summary>
    public ImageCatalog(IEnumerable<string> searchDirectories, Func<string, string?>? admitRealPath)
        : this(Local(searchDirectories), admitRealPath)
    {
    }

    /// <summary>
    /// A catalog over <paramref name="repositories"/> (local and remote); local files are listed only when their real
    /// path <paramref name="admitRealPath"/> accepts (null admits, else the reason for refusing).
    /// </summary>
    public ImageCatalog(IEnumerable<IImageRepository> repositories, Func<string, string?>? admitRealPath = null)
    {
        ArgumentNullException.ThrowIfNull(repositories);
        Repositories = [.. repositories.DistinctBy(r => r.Location, StringComparer.Ordinal)];
        SearchDirectories = [.. Repositories.Select(r => r.Location)];
        _admit = admitRealPath;
    }

    /// <summary>The repositories searched, in order.</summary>
    public IReadOnlyList<IImageRepository> Repositories { get; }

    /// <summary>The locations searched (paths and URLs), in order, for messages.</summary>
    public IReadOnlyList<string> SearchDirectories { get; }

    /// <summary>Every image found.</summary>
    public IReadOnlyList<CatalogEntry> Entries => Scan().Entries;

    /// <summary>Files and directories that were skipped, with the reason.</summary>
    public IReadOnlyList<CatalogProblem> Problems => Scan().Problems;

    /// <summary>Grows when the files in the directories change: what was not found before may be found now.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>
    /// The image with identity <paramref name="id"/>, or null. Rescans first when the id is not in the last scan or
    /// the file scanned for it has been moved or replaced since.
    /// </summary>
    public CatalogEntry? Find(Guid id)
    {
        var entry = Scan(out bool fresh).ById.GetValueOrDefault(id);
        if (entry == null ? fresh : IsUnchanged(entry))
        {
            return entry;
        }

        Refresh();
        return Scan().ById.GetValueOrDefault(id);
    }

    /// <summary>
    /// Every file with identity <paramref name="id"/> (each holds the same disk state), preferred first: the one
    /// <see cref="Find"/> returns, then the others by preference and search order. Rescans like <see cref="Find"/>.
    /// </summary>
    public IReadOnlyList<CatalogEntry> FindAll(Guid id)
    {
        if (Find(id) == null)
        {
            return [];
        }

        return [.. Scan().Entries.Where(e => e.Id == id).OrderBy(e => Preference(e.Header))];
    }

    /// <summary>Which of several files of one identity serves first: full, then derived incremental, then incremental.</summary>
    private static int Preference(ImageHeader header) => header.IsFull ? 0 : DerivedImage.IsDerived(header) ? 1 : 2;

    /// <summary>
    /// Opens the image at <paramref name="address"/> through the repository that holds it; a local path outside
    /// every repository is opened as a local file (callers apply their own rules to what was opened).
    /// </summary>
    /// <exception cref="FileNotFoundException">No such image.</exception>
    /// <exception cref="IOException">The image cannot be opened (names it and why).</exception>
    public IImageObject OpenObject(string address)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        var repository = Repositories.FirstOrDefault(r => r.Contains(address));
        if (repository != null)
        {
            return repository.Open(address);
        }

        if (ImageAddress.IsRemote(address))
        {
            throw new IOException($"{address}: not inside any of the repositories searched ({string.Join(", ", SearchDirectories)})");
        }

        return LocalImageObject.Open(address);
    }

    /// <summary>A valid image with identity <paramref name="id"/> that the admit rule refused, or null.</summary>
    public CatalogProblem? RefusedImage(Guid id) => Scan().Problems.FirstOrDefault(p => p.ImageId == id);

    /// <summary>Forgets the last scan; the next lookup scans again.</summary>
    public void Refresh()
    {
        lock (_lock)
        {
            _snapshot = null;
            _epoch++;
        }
    }

    /// <summary>Something in a search directory changed (e.g. an inotify event): forgets the scan and counts a change.</summary>
    public void NotifyChanged()
    {
        lock (_lock)
        {
            Refresh(); // the lock is re-entrant: forget and count in one step
            Interlocked.Increment(ref _generation);
        }
    }

    private static bool IsUnchanged(CatalogEntry entry) =>
        entry.Status == null || UnixFile.TryStat(entry.Path)?.Identity == entry.Status.Stat.Identity;

    private Snapshot Scan() => Scan(out _);

    /// <summary>The current snapshot; <paramref name="fresh"/> tells whether this call has just scanned.</summary>
    private Snapshot Scan(out bool fresh)
    {
        long epoch;
        fresh = false;
        lock (_lock)
        {
            if (_snapshot != null)
            {
                return _snapshot;
            }

            epoch = _epoch;
        }

        var built = BuildSnapshot();
        fresh = true;
        lock (_lock)
        {
            if (built.Fingerprint != _lastFingerprint)
            {
                _lastFingerprint = built.Fingerprint;
                Interlocked.Increment(ref _generation);
            }

            if (_epoch == epoch)
            {
                _snapshot ??= built;
                return _snapshot;
            }

            return built;
        }
    }

    private static IEnumerable<IImageRepository> Local(IEnumerable<string> directories)
    {
        ArgumentNullException.ThrowIfNull(directories);
        return directories.Select(d => new LocalDirectoryRepository(d));
    }

    private Snapshot BuildSnapshot()
    {
        var entries = new List<CatalogEntry>();
        var problems = new List<CatalogProblem>();
        var byId = new Dictionary<Guid, CatalogEntry>();
        foreach (var repository in Repositories)
        {
            IReadOnlyList<string> files;
            try
            {
                files = repository.List();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problems.Add(new CatalogProblem(repository.Location, e.Message));
                continue;
            }

            // One result per file, in listing order; remote headers are fetched in parallel (one request each).
            var results = new (CatalogEntry? Entry, CatalogProblem? Problem)[files.Count];
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = repository.IsRemote ? 16 : 1 };
            Parallel.For(0, files.Count, parallel, k => results[k] = ScanOne(repository, files[k]));
            foreach (var (entry, problem) in results)
            {
                if (problem != null)
                {
                    problems.Add(problem);
                }

                if (entry != null)
                {
                    entries.Add(entry);
                    if (!byId.TryGetValue(entry.Id, out var other) || Preference(entry.Header) < Preference(other.Header))
                    {
                        byId[entry.Id] = entry;
                    }
                }
            }
        }

        var fingerprint = default(HashCode);
        foreach (var e in entries)
        {
            fingerprint.Add(e.Path);
            fingerprint.Add(e.Id);
            fingerprint.Add(e.Status?.Stat.Identity);
        }

        foreach (var p in problems)
        {
            fingerprint.Add(p.Path);
            fingerprint.Add(p.Reason);
        }

        return new Snapshot(entries, problems, byId, fingerprint.ToHashCode());
    }

    private (CatalogEntry? Entry, CatalogProblem? Problem) ScanOne(IImageRepository repository, string file)
    {
        try
        {
            using var image = repository.Open(file);
            if (image.LocalStatus is { } status && _admit?.Invoke(status.RealPath) is { } refused)
            {
                return (null, new CatalogProblem(file, refused, TryReadId(image)));
            }

            var header = BackupImageFile.ReadHeader(image);
            return (new CatalogEntry(file, header) { Status = image.LocalStatus, Repository = repository }, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return (null, new CatalogProblem(file, e.Message));
        }
    }

    /// <summary>The identity in a refused file's header (for messages only; nothing else of it is used).</summary>
    private static Guid? TryReadId(IImageObject image)
    {
        try
        {
            return BackupImageFile.ReadHeader(image).ImageId;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return null;
        }
    }

    private sealed record Snapshot(List<CatalogEntry> Entries, List<CatalogProblem> Problems, Dictionary<Guid, CatalogEntry> ById, int Fingerprint);
}
