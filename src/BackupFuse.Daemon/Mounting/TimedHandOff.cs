namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - Answering stat for a plugin opens its backup point (the served size needs the synthesized disk: for a file-level
//   point, the whole catalog parsed and laid out). The first open of the file follows within milliseconds (a
//   hypervisor, `dd`, `qemu-img` all stat first), and opening the point a second time there doubled the time to first
//   byte for a catalog of a million files. So the point opened for stat is handed to the first open instead of
//   being closed, when that open comes within the lifetime (PluginProvider.HandOffLifetime).
// - Bounded in time and number: a hand-off nobody takes (an `ls -l` of a folder of plugins) is disposed after its
//   lifetime by a timer, and its TimedHandOffs owner keeps at most a few pending (more are closed at once), so stat
//   never keeps files open or catalogs in memory for long. Whoever takes the value owns it. The owner's set roots
//   pending hand-offs: one nobody else references any more (its plugin entry replaced) still runs its timer.
// - The point is the one the open would have made: same plugin version (the entry's key), same owner, same roots
//   (PluginProvider makes the hand-off inside the entry's load and takes it only in that entry's stack factory; when
//   a newer entry of the same plugin reuses the stack, its identity is equal, so the older entry's point is too).
// - Thread-safe: Take and the timer race through one Interlocked.Exchange; exactly one of them gets the value. The
//   timer is armed only after it is assigned, so its callback always finds it.

/// <summary>
/// Something opened for one request (a backup point opened for stat) kept briefly for the next one that needs it
/// (the first open of the same plugin). Made by <see cref="TimedHandOffs{T}.Offer"/>.
/// </summary>
/// <typeparam name="T">What is handed over; disposed when nobody takes it in time.</typeparam>
public sealed class TimedHandOff<T> : IDisposable
    where T : class, IDisposable
{
    private readonly TimedHandOffs<T> _owner;
    private readonly Timer _timer;
    private T? _value;

    internal TimedHandOff(TimedHandOffs<T> owner, T value, TimeSpan lifetime)
    {
        _owner = owner;
        _value = value;
        _timer = new Timer(static state => ((TimedHandOff<T>)state!).Dispose(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        owner.Register(this); // before the timer runs: its Forget must find it
        _timer.Change(lifetime, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The value, once (the caller owns it); null when it was taken or has expired.</summary>
    public T? Take()
    {
        var value = Interlocked.Exchange(ref _value, null);
        if (value != null)
        {
            _timer.Dispose();
            _owner.Forget(this);
        }

        return value;
    }

    /// <summary>Disposes the value unless it was taken.</summary>
    public void Dispose()
    {
        _timer.Dispose();
        _owner.Forget(this);
        var value = Interlocked.Exchange(ref _value, null);
        try
        {
            value?.Dispose();
        }
        catch (IOException e)
        {
            // Closing files that were only read: nothing is lost. Never let it escape a timer thread.
            Serilog.Log.Warning("closing an untaken {Type} failed: {Reason}", typeof(T).Name, e.Message);
        }
    }
}
