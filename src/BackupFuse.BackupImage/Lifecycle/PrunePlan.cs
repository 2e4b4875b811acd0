using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - Input: every image of one directory (catalog entries), a retention policy, and the points that must stay whatever
//   the policy says (named by a plugin, or with a file open in some process: a mount). Output: which points stay, which
//   kept points must be folded (their file rewritten so that their chain only runs through kept points), and which
//   files go. The plan is computed from headers alone; nothing is written here.
// - Lineages: points descending from one full backup form one lineage (one disk's chain tree; a synthetic full carries
//   the lineage it was cut from, DerivedImage.LineageId); the policy applies per lineage, so two disks backed up into
//   one directory keep N points each.
// - A kept point whose parent is forgotten is folded down to its nearest kept ancestor (an incremental of it), or into
//   a synthetic full when no ancestor is kept. Files of forgotten points are deleted; so are extra files of a kept point
//   whose own parent is forgotten (another file, the one the fold writes, serves that point).
// - A kept point whose chain has a hole (a parent not in the directory) is left as it is and reported; nothing below
//   the hole can be reasoned about, so the whole lineage is kept.
// - Order of execution (the command): folds first, oldest first, each made visible atomically; deletions last. A crash
//   anywhere leaves every kept point readable, and every forgotten one either readable or gone: deletions go children
//   first (the reverse of the chain order), never a parent before its child.
// - A protected point that is not in the directory is reported (a warning naming why it is protected): its own file
//   lies elsewhere, but its chain may run through images here, and the plan cannot see that chain (headers of this
//   directory only), so it cannot protect them.

/// <summary>What prune will do in one directory.</summary>
public sealed class PrunePlan
{
    private PrunePlan(IReadOnlyList<PlannedPoint> kept, IReadOnlyList<PlannedPoint> forgotten, IReadOnlyList<string> deletions, IReadOnlyList<string> warnings)
    {
        Kept = kept;
        Forgotten = forgotten;
        Deletions = deletions;
        Warnings = warnings;
    }

    /// <summary>Points that stay, oldest first; <see cref="PlannedPoint.Fold"/> says whether their file is rewritten.</summary>
    public IReadOnlyList<PlannedPoint> Kept { get; }

    /// <summary>Points that go.</summary>
    public IReadOnlyList<PlannedPoint> Forgotten { get; }

    /// <summary>Files deleted once the folds are done, in this order (children before their parents).</summary>
    public IReadOnlyList<string> Deletions { get; }

    /// <summary>Things the plan could not do, for the user.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Plans a prune of the images in <paramref name="entries"/>.</summary>
    /// <param name="entries">Every image of the directory (all files of every id).</param>
    /// <param name="policy">The retention policy, per lineage.</param>
    /// <param name="protectedPoints">Points kept whatever the policy says, with the reason (a plugin, an open file).</param>
    /// <param name="preferred">The file that serves an id (the catalog's choice).</param>
    public static PrunePlan Create(IReadOnlyList<CatalogEntry> entries, RetentionPolicy policy, IReadOnlyDictionary<Guid, string> protectedPoints, Func<Guid, CatalogEntry?> preferred)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(protectedPoints);
        ArgumentNullException.ThrowIfNull(preferred);
        var byId = entries.GroupBy(e => e.Id).ToDictionary(g => g.Key, g => g.ToList());
        var serving = byId.Keys.ToDictionary(id => id, id => preferred(id) ?? byId[id][0]);
        var warnings = new List<string>();

        // Lineages: the full backup a point descends from (a synthetic full names it: DerivedImage.LineageId).
        Guid Lineage(Guid id)
        {
            var e = serving[id];
            for (int d = 0; !e.Header.IsFull && byId.ContainsKey(e.ParentId) && d < BackupChain.MaxDepth; d++)
            {
                e = serving[e.ParentId];
            }

            return e.Header.IsFull ? DerivedImage.LineageId(e.Header) ?? e.Id : e.ParentId;
        }

        var reasons = new Dictionary<Guid, List<string>>();
        foreach (var lineage in byId.Keys.GroupBy(Lineage))
        {
            var kept = policy.Apply(lineage.Select(id => (id, serving[id].Header.CreatedUtc)));
            foreach (var (id, why) in kept)
            {
                reasons[id] = why;
            }

            // A hole in a chain: keep the lineage whole, say why.
            var broken = lineage.Where(id => !serving[id].Header.IsFull && !byId.ContainsKey(serving[id].ParentId)).ToList();
            foreach (var id in broken)
            {
                warnings.Add($"{serving[id].Path}: its parent {serving[id].ParentId} is not in the directory; its lineage is kept as it is");
            }

            if (broken.Count > 0)
            {
                foreach (var id in lineage)
                {
                    if (!reasons.ContainsKey(id))
                    {
                        reasons[id] = ["chain incomplete"];
                    }
                }
            }
        }

        foreach (var (id, why) in protectedPoints)
        {
            if (byId.ContainsKey(id))
            {
                if (!reasons.TryGetValue(id, out var list))
                {
                    reasons[id] = list = [];
                }

                list.Add(why);
            }
            else
            {
                warnings.Add($"{why} names point {id}, which is not in the pruned directory: images here that its chain needs are not protected by it");
            }
        }

        int Depth(Guid id)
        {
            int d = 0;
            for (var e = serving[id]; !e.Header.IsFull && byId.ContainsKey(e.ParentId) && d < BackupChain.MaxDepth; e = serving[e.ParentId])
            {
                d++;
            }

            return d;
        }

        var keptPoints = new List<PlannedPoint>();
        var forgotten = new List<PlannedPoint>();
        var deletions = new List<string>();
        foreach (var id in byId.Keys.OrderBy(Depth).ThenBy(id => serving[id].Header.CreatedUtc))
        {
            var top = serving[id];
            if (!reasons.TryGetValue(id, out var why))
            {
                forgotten.Add(new PlannedPoint(id, top.Path, top.Header.CreatedUtc, [], FoldKind.None, null));
                deletions.AddRange(byId[id].Select(e => e.Path));
                continue;
            }

            // The nearest kept ancestor of the serving file's chain.
            var fold = FoldKind.None;
            Guid? onto = null;
            if (!top.Header.IsFull && byId.ContainsKey(top.ParentId) && !reasons.ContainsKey(top.ParentId))
            {
                var p = top.ParentId;
                while (byId.ContainsKey(p) && !reasons.ContainsKey(p) && !serving[p].Header.IsFull)
                {
                    p = serving[p].ParentId;
                }

                bool keptAncestor = byId.ContainsKey(p) && reasons.ContainsKey(p);
                fold = keptAncestor ? FoldKind.OntoKeptAncestor : FoldKind.SyntheticFull;
                onto = keptAncestor ? p : null;
            }

            keptPoints.Add(new PlannedPoint(id, top.Path, top.Header.CreatedUtc, why, fold, onto));

            // Other files of a kept point that still need a forgotten parent: the serving file serves the point.
            deletions.AddRange(byId[id].Where(e => e.Path != top.Path && !e.Header.IsFull && !reasons.ContainsKey(e.ParentId)).Select(e => e.Path));
        }

        // Newest first: a forgotten point is deleted before its parent, so that a crash between two deletions never
        // leaves an image whose parent is gone.
        deletions.Reverse();
        return new PrunePlan(keptPoints, forgotten, deletions, warnings);
    }
}

/// <summary>How a kept point's file is rewritten by prune.</summary>
public enum FoldKind
{
    /// <summary>Its parent is kept: nothing to do.</summary>
    None,

    /// <summary>Folded into a synthetic full (no ancestor is kept).</summary>
    SyntheticFull,

    /// <summary>Folded down onto its nearest kept ancestor (the points between are forgotten).</summary>
    OntoKeptAncestor,
}

/// <summary>A point in a prune plan.</summary>
/// <param name="Id">Its identity.</param>
/// <param name="Path">The file that serves it.</param>
/// <param name="CreatedUtc">When it was taken.</param>
/// <param name="Reasons">Why it is kept (empty when forgotten).</param>
/// <param name="Fold">Whether and how its file is rewritten.</param>
/// <param name="Onto">The kept ancestor it is folded onto.</param>
public sealed record PlannedPoint(Guid Id, string Path, DateTime CreatedUtc, IReadOnlyList<string> Reasons, FoldKind Fold, Guid? Onto);
