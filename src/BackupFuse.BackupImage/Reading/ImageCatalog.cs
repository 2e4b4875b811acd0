using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Chains are resolved by identity, never by stored paths: the catalog reads the 512-byte header of every *.bfi
//   directly inside each search directory (not recursive) and maps image id -> file. A chain may span several
//   directories (disjoint media).
// - Admission (optional): a catalog built with an admit rule only lists files whose REAL path (of the opened
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
// - The same id in two files (a copy on other media) resolves to the first one found, in search-directory order,
//   then by file name.
// - Thread-safe: the scan result is an immutable snapshot swapped in under a lock; the scan itself (I/O on every
//   image) runs outside the lock, so a slow file never blocks a lookup that has a snapshot. A scan that raced with a
//   Refresh is used by its caller but not cached.

/// <summary>A file found by a catalog scan, with its header.</summary>
public sealed record CatalogEntry(string Path, ImageHeader Header)
{
    /// <summary>The image's identity.</summary>
    public Guid Id => Header.ImageId;

    /// <summary>The parent's identity (<see cref="Guid.Empty"/> for a full backup).</summary>
    public Guid ParentId => Header.ParentId;

    /// <summary>The file that was scanned (real path, identity, owner, mode).</summary>
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

    /// <summary>A catalog over <paramref name="searchDirectories"/> (scanned on first use).</summary>
    public ImageCatalog(IEnumerable<string> searchDirectories)
        : this(searchDirectories, null)
    {
    }

    /// <summary>
    /// A catalog over <paramref name="searchDirectories"/> that lists only files whose real path
    /// <paramref name="admitRealPath"/> accepts: it returns null to admit, else the reason for refusing.
    /// </summary>
    public ImageCatalog(IEnumerable<string> searchDirectories, Func<string, string?>? admitRealPath)
    {
        ArgumentNullException.ThrowIfNull(searchDirectories);
        SearchDirectories = [.. searchDirectories.Select(System.IO.Path.GetFullPath).Distinct()];
        _admit = admitRealPath;
    }

    /// <summary>The directories searched, in order.</summary>
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
                    using var handle = UnixFile.OpenRegular(file, out var status);
                    string? refused = _admit?.Invoke(status.RealPath);
                    if (refused != null)
                    {
                        problems.Add(new CatalogProblem(file, refused, TryReadId(handle, file)));
                        continue;
                    }

                    var header = BackupImageFile.ReadHeader(handle, RandomAccess.GetLength(handle), file);
                    var entry = new CatalogEntry(file, header) { Status = status };
                    entries.Add(entry);
                    byId.TryAdd(entry.Id, entry);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    problems.Add(new CatalogProblem(file, e.Message));
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

    /// <summary>The identity in a refused file's header (for messages only; nothing else of it is used).</summary>
    private static Guid? TryReadId(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string file)
    {
        try
        {
            return BackupImageFile.ReadHeader(handle, RandomAccess.GetLength(handle), file).ImageId;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return null;
        }
    }

    private sealed record Snapshot(List<CatalogEntry> Entries, List<CatalogProblem> Problems, Dictionary<Guid, CatalogEntry> ById, int Fingerprint);
}
