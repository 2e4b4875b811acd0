using BackupFuse.BackupImage.Lifecycle;

namespace BackupFuse.BackupImage.Tests;

/// <summary>RetentionPolicy: keep-last, keep-daily and keep-weekly as restic and borg define them.</summary>
public sealed class PruneRetentionTests
{
    private static readonly DateTime Monday = new(2026, 11, 2, 12, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void KeepLastKeepsTheNewestByCreationTime()
    {
        var points = Enumerable.Range(0, 6).Select(i => (Id: Guid.NewGuid(), Created: Monday.AddHours(i))).ToList();
        var kept = new RetentionPolicy(2).Apply(points.OrderBy(_ => Guid.NewGuid()).ToList());
        Assert.Equal(new[] { points[4].Id, points[5].Id }.Order(), kept.Keys.Order());
        Assert.All(kept.Values, r => Assert.Equal(["last"], r));
    }

    [Fact]
    public void KeepDailyKeepsTheNewestOfEachOfTheNewestDays()
    {
        // Three points a day for five days.
        var points = Enumerable.Range(0, 15).Select(i => (Id: Guid.NewGuid(), Created: Monday.AddDays(i / 3).AddHours(i % 3))).ToList();
        var kept = new RetentionPolicy(0, KeepDaily: 3).Apply(points);
        Assert.Equal(new[] { points[14].Id, points[11].Id, points[8].Id }.Order(), kept.Keys.Order());
        Assert.Equal(["daily 2026-11-06"], kept[points[14].Id]);
    }

    [Fact]
    public void KeepWeeklyUsesIsoWeeksAndReasonsAccumulate()
    {
        // One point a day for three weeks, starting on a Monday.
        var points = Enumerable.Range(0, 21).Select(i => (Id: Guid.NewGuid(), Created: Monday.AddDays(i))).ToList();
        var kept = new RetentionPolicy(1, KeepDaily: 0, KeepWeekly: 2).Apply(points);
        Assert.Equal(new[] { points[20].Id, points[13].Id }.Order(), kept.Keys.Order());
        Assert.Equal(["last", "weekly 2026-W47"], kept[points[20].Id]);
        Assert.Equal(["weekly 2026-W46"], kept[points[13].Id]);
    }
}
