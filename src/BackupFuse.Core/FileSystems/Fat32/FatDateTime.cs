namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - FAT stores local date/time fields; we write UTC (a synthesized disk must not depend on the host's time zone).
//   Date: bits 15-9 year - 1980, 8-5 month, 4-0 day. Time: bits 15-11 hour, 10-5 minute, 4-0 seconds / 2.
//   The creation-time "tenth" byte counts 10 ms units, 0..199, adding the odd second and the sub-second part.
// - Times outside 1980-01-01 .. 2107-12-31 23:59:58 are clamped to the nearest end (FAT cannot say more).

/// <summary>Encodes Unix times as FAT directory-entry date and time fields.</summary>
public static class FatDateTime
{
    private static readonly DateTime Min = new(1980, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime Max = new(2107, 12, 31, 23, 59, 59, 990, DateTimeKind.Utc);

    /// <summary>The FAT (date, time, 10-ms units) of <paramref name="unixNs"/> nanoseconds since 1970 UTC.</summary>
    public static (ushort Date, ushort Time, byte Centiseconds) Encode(long unixNs)
    {
        var t = ToDateTime(unixNs);
        ushort date = (ushort)(((t.Year - 1980) << 9) | (t.Month << 5) | t.Day);
        ushort time = (ushort)((t.Hour << 11) | (t.Minute << 5) | (t.Second / 2));
        byte cs = (byte)(((t.Second % 2) * 100) + (t.Millisecond / 10));
        return (date, time, cs);
    }

    /// <summary>The UTC time of <paramref name="unixNs"/>, clamped to what FAT can store.</summary>
    private static DateTime ToDateTime(long unixNs)
    {
        // Floor division: a negative time before 1970 is clamped anyway, so no care for rounding there.
        long ticks = unixNs / 100;
        if (ticks < (Min - DateTime.UnixEpoch).Ticks)
        {
            return Min;
        }

        if (ticks > (Max - DateTime.UnixEpoch).Ticks)
        {
            return Max;
        }

        return DateTime.UnixEpoch.AddTicks(ticks);
    }
}
