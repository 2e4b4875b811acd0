using System.Globalization;
using System.Text;
using System.Text.Json;
using BackupFuse.BackupImage.Storage.Caching;
using BackupFuse.Core;
using BackupFuse.Daemon.Cli;
using BackupFuse.Fuse.Overlay;
using Serilog;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - How `backupfuse status` learns a mount's cache figures: the daemon writes a small JSON file
//   (MountStatisticsSnapshot) every few seconds and at exit, and status reads it. No socket, no protocol: a
//   daemon that hangs or dies leaves an old file, which status recognises by its process id (gone) or age.
// - Where: /run/backupfuse for root (0755, files 0644: cache figures and the mount point are no secret, and any user
//   may run status), $XDG_RUNTIME_DIR/backupfuse for other users (their private runtime directory; no file when it is
//   not set). The name comes from the mount point like the log file's (LogFiles.FileNameFor), ".json" instead of ".log".
// - Written symlink-safely: the directory is opened without following a symlink and must belong to this user and not
//   be writable by others; the file is written to a fresh temporary name (O_EXCL|O_NOFOLLOW) and renamed over the
//   old one, so a reader sees the old or the new file, never a half-written one.
// - Failures to write are logged once and otherwise ignored: statistics never stop a mount.
// - Threading: the timer callback and Dispose serialize on a lock.
// - The memory cache's figures are the process-wide budget's (CacheBudget.Process): all plugins together; a wait for
//   a block another reader was loading counts as served from memory in the hit rate.
// - Not done: per-plugin figures.

/// <summary>Publishes a mount's cache statistics for <c>backupfuse status</c>.</summary>
public sealed class MountStatistics : IDisposable
{
    /// <summary>How often the file is rewritten.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(5);

    private readonly object _lock = new();
    private readonly string _mountPoint;
    private readonly Func<ImageCache?> _cache;
    private readonly string? _directory;
    private readonly Timer _timer;
    private bool _warned;
    private bool _disposed;

    private MountStatistics(string mountPoint, Func<ImageCache?> cache, string? directory, TimeSpan interval)
    {
        _mountPoint = mountPoint;
        _cache = cache;
        _directory = directory;
        _timer = new Timer(_ => Write(), null, TimeSpan.Zero, interval);
    }

    /// <summary>
    /// Starts publishing the statistics of the mount at <paramref name="mountPoint"/> (with its remote cache, if any)
    /// until disposed; disposing writes them a last time. MountCommand calls this once the mount is set up.
    /// </summary>
    public static MountStatistics Start(string mountPoint, ImageCache? cache, TimeSpan? interval = null, string? directory = null) =>
        Start(mountPoint, () => cache, interval, directory);

    /// <summary>
    /// Like <see cref="Start(string, ImageCache?, TimeSpan?, string?)"/>, for a cache that may be opened later (on the
    /// first remote image): <paramref name="cache"/> is asked at every write.
    /// </summary>
    public static MountStatistics Start(string mountPoint, Func<ImageCache?> cache, TimeSpan? interval = null, string? directory = null) =>
        new(Path.GetFullPath(mountPoint), cache, directory ?? DefaultDirectory(), interval ?? DefaultInterval);

    /// <summary>The directory this user's daemons write to: /run/backupfuse for root, else $XDG_RUNTIME_DIR/backupfuse (null when unset).</summary>
    public static string? DefaultDirectory()
    {
        if (UnderlyingDirectory.CurrentUserId == 0)
        {
            return "/run/backupfuse";
        }

        string? runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return string.IsNullOrEmpty(runtime) || !Path.IsPathRooted(runtime) ? null : Path.Combine(runtime, "backupfuse");
    }

    /// <summary>The file name for a mount point: "srv-vms.json" for /srv/vms.</summary>
    public static string FileNameFor(string mountPoint)
    {
        string log = LogFiles.FileNameFor(mountPoint); // mount-<escaped>.log
        return string.Concat(log.AsSpan("mount-".Length, log.Length - "mount-".Length - ".log".Length), ".json");
    }

    /// <summary>
    /// The statistics a live daemon published for <paramref name="mountPoint"/>, looked up in <paramref name="directories"/>
    /// (default: /run/backupfuse and this user's runtime directory); null when there is none or its daemon is gone.
    /// </summary>
    public static MountStatisticsSnapshot? TryRead(string mountPoint, IEnumerable<string>? directories = null)
    {
        string name = FileNameFor(mountPoint);
        foreach (string dir in (directories ?? ["/run/backupfuse", DefaultDirectory() ?? "/run/backupfuse"]).Distinct(StringComparer.Ordinal))
        {
            try
            {
                var snapshot = JsonSerializer.Deserialize(File.ReadAllText(Path.Combine(dir, name)), MountStatisticsJsonContext.Default.MountStatisticsSnapshot);
                if (snapshot != null && snapshot.MountPoint == Path.GetFullPath(mountPoint) && Directory.Exists("/proc/" + snapshot.ProcessId.ToString(CultureInfo.InvariantCulture)))
                {
                    return snapshot;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
            {
                // Missing, unreadable or half-understood: no figures for this mount.
            }
        }

        return null;
    }

    /// <summary>The lines `status` prints under a mount (none when <paramref name="s"/> is null).</summary>
    public static IEnumerable<string> Describe(MountStatisticsSnapshot? s)
    {
        if (s == null)
        {
            yield break;
        }

        if (s.RemoteCache is { } r)
        {
            var line = new StringBuilder();
            line.Append(CultureInfo.InvariantCulture, $"  remote cache: hit rate {r.HitRate * 100:0.0}% ({r.Hits} hits, {r.Misses} misses), ");
            line.Append(CultureInfo.InvariantCulture, $"fetched {Bytes.Format(r.BytesFetched)} in {r.InnerRequests} requests (readahead {Bytes.Format(r.ReadaheadBytes)}), ");
            line.Append(CultureInfo.InvariantCulture, $"served {Bytes.Format(r.BytesServedFromCache)} from cache; holds {Bytes.Format(r.StoredBytes)} of {Bytes.Format(r.CapacityBytes)} in {s.RemoteCacheDirectory}");
            if (r.IsPrivate)
            {
                line.Append(" (private: the cache directory was in use)");
            }

            if (r.DamagedBlocks > 0)
            {
                line.Append(CultureInfo.InvariantCulture, $"; {r.DamagedBlocks} damaged blocks fetched again");
            }

            yield return line.ToString();
        }

        long served = s.MemoryCacheHits + s.MemoryCacheWaits;
        string rate = served + s.MemoryCacheMisses == 0 ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{100.0 * served / (served + s.MemoryCacheMisses):0.0}%");
        yield return string.Create(CultureInfo.InvariantCulture,
            $"  memory cache: hit rate {rate} ({s.MemoryCacheHits} hits, {s.MemoryCacheWaits} waits for another reader's load, {s.MemoryCacheMisses} misses), " +
            $"{Bytes.Format(s.MemoryCacheHeldBytes)} of {Bytes.Format(s.MemoryCacheCapacityBytes)} held, {s.MemoryCacheEvictions} evictions");
    }

    /// <summary>Stops the timer and writes the statistics a last time.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _timer.Dispose();
        lock (_lock)
        {
            WriteLocked();
        }
    }

    private MountStatisticsSnapshot Capture() => new()
    {
        MountPoint = _mountPoint,
        ProcessId = Environment.ProcessId,
        UpdatedUtc = DateTime.UtcNow,
        RemoteCache = _cache()?.Statistics,
        RemoteCacheDirectory = _cache()?.Directory,
        MemoryCacheHeldBytes = CacheBudget.Process.HeldBytes,
        MemoryCacheCapacityBytes = CacheBudget.Process.CapacityBytes,
        MemoryCacheEvictions = CacheBudget.Process.Evictions,
        MemoryCacheHits = CacheBudget.Process.Hits,
        MemoryCacheMisses = CacheBudget.Process.Misses,
        MemoryCacheWaits = CacheBudget.Process.Waits,
    };

    private void Write()
    {
        lock (_lock)
        {
            if (!_disposed)
            {
                WriteLocked();
            }
        }
    }

    private void WriteLocked()
    {
        if (_directory == null)
        {
            return;
        }

        try
        {
            byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(Capture(), MountStatisticsJsonContext.Default.MountStatisticsSnapshot);
            string name = FileNameFor(_mountPoint);
            using var parent = UnderlyingDirectory.Open(Path.GetDirectoryName(_directory)!);
            using var dir = parent.CreateDirectory(Path.GetFileName(_directory), (UnixFileMode)0x1ED, out _); // 0755
            var st = dir.GetStat();
            if (st.Uid != UnderlyingDirectory.CurrentUserId || (st.Mode & 0x12) != 0)
            {
                throw new IOException($"{_directory}: not a directory of this user that others cannot write");
            }

            string temp = $".{name}.{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}.tmp";
            dir.Delete(temp);
            using (var file = dir.OpenFile(temp, FileAccess.Write, FileMode.CreateNew, (UnixFileMode)0x1A4)) // 0644
            {
                RandomAccess.Write(file, bytes, 0);
            }

            dir.Rename(temp, name, replace: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) // ErrnoException is an IOException
        {
            if (!_warned)
            {
                _warned = true;
                Log.Warning("cannot write the statistics of {MountPoint} for 'backupfuse status': {Problem}", _mountPoint, e.Message);
            }
        }
    }
}
