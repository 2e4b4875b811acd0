namespace BackupFuse.Core.FileTrees;

/// <summary>
/// File times as nanoseconds since 1970-01-01 UTC (the catalog's unit), saturating at the ends of the 64-bit range
/// (years 1677..2262) instead of wrapping: a file dated 3000 keeps the latest time the catalog can hold, never a
/// time in the past, and a tar header cannot make the conversion throw.
/// </summary>
public static class UnixNanoseconds
{
    private const long TicksPerSecond = TimeSpan.TicksPerSecond;

    /// <summary>The time <paramref name="utc"/> (its ticks are taken as UTC).</summary>
    public static long From(DateTime utc) => FromTicks(utc.Ticks - DateTime.UnixEpoch.Ticks);

    /// <summary>The time <paramref name="time"/>.</summary>
    public static long From(DateTimeOffset time) => FromTicks(time.UtcTicks - DateTime.UnixEpoch.Ticks);

    /// <summary>A count of seconds (a pax time such as "1700000000.123456789").</summary>
    public static long FromSeconds(decimal seconds) =>
        seconds >= long.MaxValue / 1_000_000_000m ? long.MaxValue : seconds <= long.MinValue / 1_000_000_000m ? long.MinValue : (long)(seconds * 1_000_000_000m);

    private static long FromTicks(long ticks) =>
        ticks > long.MaxValue / 100 ? long.MaxValue : ticks < long.MinValue / 100 ? long.MinValue : ticks * 100;
}
