using System.Collections.Concurrent;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - Answering stat for a plugin opens its backup point (the served size needs the synthesized disk: for a file-level
//   point, the whole catalog parsed and laid out). The first open of the file follows within milliseconds (a
//   hypervisor, `dd`, `qemu-img` all stat first), and opening the point a second time there doubled the time to first
//   byte for a catalog of a million files. So the point opened for stat is handed to the first open instead of
//   being closed, when that open comes within the lifetime (PluginProvider.HandOffLifetime).
// - Bounded: a point nobody takes (an `ls -l` of a folder of plugins) is disposed after the lifetime by a timer, so stat
//   never keeps files open or catalogs in memory for long. Whoever takes the point owns it. Pending hand-offs are
//   rooted in a static set until taken or expired: a hand-off nobody references any more (its plugin entry replaced)
//   must still run its timer and close its files, not wait for a finalizer.
// - The point is the one the open would have made: same plugin version (the entry's key), same owner, same roots
//   (PluginProvider makes the hand-off inside the entry's load and takes it only in that entry's stack factory).
// - Thread-safe: Take and the timer race through one Interlocked.Exchange; exactly one of them gets the value.

/// <summary>
/// Something opened for one request (a backup point opened for stat) kept briefly for the next one that needs it
/// (the first open of the same plugin).
/// </summary>
/// <typeparam name="T">What is handed over; disposed when nobody takes it in time.</typeparam>
public sealed class TimedHandOff<T> : IDisposable
    where T : class, IDisposable
{
    private static readonly ConcurrentDictionary<TimedHandOff<T>, byte> Pending = new(ReferenceEqualityComparer.Instance);

    private readonly Timer _timer;
    private T? _value;

    /// <summary>Keeps <paramref name="value"/> (taken over) for <paramref name="lifetime"/>.</summary>
    public TimedHandOff(T value, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(value);
        _value = value;
        Pending[this] = 0;
        _timer = new Timer(static state => ((TimedHandOff<T>)state!).Dispose(), this, lifetime, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The value, once (the caller owns it); null when it was taken or has expired.</summary>
    public T? Take()
    {
        var value = Interlocked.Exchange(ref _value, null);
        if (value != null)
        {
            _timer.Dispose();
            Pending.TryRemove(this, out _);
        }

        return value;
    }

    /// <summary>Disposes the value unless it was taken.</summary>
    public void Dispose()
    {
        _timer.Dispose();
        Pending.TryRemove(this, out _);
        Interlocked.Exchange(ref _value, null)?.Dispose();
    }
}
