using System.Globalization;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - The rules restic and borg users know, applied to the points of one lineage (a full and everything derived from it),
//   newest first by creation time: --keep-last N keeps the N newest; --keep-daily D keeps the newest point of each of
//   the D newest days that have points (UTC); --keep-weekly W the same per ISO week. A point kept by several rules
//   lists every reason. Nothing else is decided here (plugins and open files protect points in PrunePlan).

/// <summary>Which points of a lineage a retention policy keeps, and why.</summary>
/// <param name="KeepLast">Newest points kept.</param>
/// <param name="KeepDaily">Days (newest point of each) kept.</param>
/// <param name="KeepWeekly">ISO weeks (newest point of each) kept.</param>
public sealed record RetentionPolicy(int KeepLast, int KeepDaily = 0, int KeepWeekly = 0)
{
    /// <summary>The kept points with their reasons; <paramref name="points"/> are (id, creation time).</summary>
    public IReadOnlyDictionary<Guid, List<string>> Apply(IEnumerable<(Guid Id, DateTime CreatedUtc)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var ordered = points.OrderByDescending(p => p.CreatedUtc).ThenBy(p => p.Id).ToList();
        var kept = new Dictionary<Guid, List<string>>();
        void Keep(Guid id, string why)
        {
            if (!kept.TryGetValue(id, out var reasons))
            {
                kept[id] = reasons = [];
            }

            reasons.Add(why);
        }

        foreach (var p in ordered.Take(KeepLast))
        {
            Keep(p.Id, "last");
        }

        Bucket(ordered, KeepDaily, t => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), "daily", Keep);
        Bucket(ordered, KeepWeekly, t => $"{ISOWeek.GetYear(t)}-W{ISOWeek.GetWeekOfYear(t):00}", "weekly", Keep);
        return kept;
    }

    private static void Bucket(List<(Guid Id, DateTime CreatedUtc)> ordered, int count, Func<DateTime, string> key, string rule, Action<Guid, string> keep)
    {
        var seen = new HashSet<string>();
        foreach (var p in ordered)
        {
            if (seen.Count >= count)
            {
                break;
            }

            string k = key(p.CreatedUtc);
            if (seen.Add(k))
            {
                keep(p.Id, $"{rule} {k}");
            }
        }
    }
}
