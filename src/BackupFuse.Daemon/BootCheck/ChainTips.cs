using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - "The newest point of each chain" (boot-check --latest, the nightly timer): among the images found in the
//   directories (headers only, ImageCatalog), the tips are those no other image names as its parent; tips are grouped
//   by the full backup their chain starts from (followed by identity through the catalog; a chain whose parent is
//   missing is grouped under its oldest image found), and the newest tip (header creation time) of each group is taken.
// - An id held by several files (after `merge -o`: a synthetic full next to the incremental it reproduces) is
//   represented by the catalog's preferred file (ImageCatalog.Find), the one a reader uses; a parent named by any of
//   its files is not a tip, and a synthetic full belongs to the lineage it was cut from.
// - Read-only; the catalog's admission and problem rules apply (a bad file is skipped, not fatal).

/// <summary>Finds the newest backup point of every chain in some directories.</summary>
public static class ChainTips
{
    /// <summary>The paths of the newest image of each chain, oldest chain root first.</summary>
    public static IReadOnlyList<string> Newest(ImageCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        // One file per id: the catalog's choice (after `merge -o` two files carry one id; the catalog prefers the one a
        // reader would use), never simply the first found.
        var entries = catalog.Entries.GroupBy(e => e.Id).Select(g => catalog.Find(g.Key) ?? g.First()).ToDictionary(e => e.Id);
        // A parent named by any file of an id (a synthetic full names none, the incremental it reproduces does).
        var parents = catalog.Entries.Where(e => e.ParentId != Guid.Empty).Select(e => e.ParentId).ToHashSet();
        return [.. entries.Values
            .Where(e => !parents.Contains(e.Id))
            .GroupBy(e => Root(e, entries))
            .Select(g => g.OrderByDescending(e => e.Header.CreatedUtc).First())
            .OrderBy(e => e.Path, StringComparer.Ordinal)
            .Select(e => e.Path)];
    }

    private static Guid Root(CatalogEntry entry, Dictionary<Guid, CatalogEntry> entries)
    {
        var seen = new HashSet<Guid>();
        var e = entry;
        while (e.ParentId != Guid.Empty && seen.Add(e.Id) && entries.TryGetValue(e.ParentId, out var parent))
        {
            e = parent;
        }

        // A synthetic full is grouped with the lineage it was cut from (DerivedImage.LineageId).
        return e.ParentId == Guid.Empty ? DerivedImage.LineageId(e.Header) ?? e.Id : e.Id;
    }
}
