using System.Collections.Concurrent;

namespace BackupFuse.Daemon.Mounting;

/// <summary>
/// The pending <see cref="TimedHandOff{T}"/>s of one owner (a mount's plugin provider): at most
/// <c>maxPending</c> at once, each for <c>lifetime</c>; disposing the owner disposes those still pending.
/// Thread-safe.
/// </summary>
/// <typeparam name="T">What is handed over.</typeparam>
public sealed class TimedHandOffs<T>(TimeSpan lifetime, int maxPending) : IDisposable
    where T : class, IDisposable
{
    private readonly ConcurrentDictionary<TimedHandOff<T>, byte> _pending = new(ReferenceEqualityComparer.Instance);
    private int _count;

    /// <summary>Hand-offs not yet taken or expired.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Keeps <paramref name="value"/> (taken over) for the next request; when <c>maxPending</c> are already kept,
    /// disposes it at once and returns null (the next request opens its own).
    /// </summary>
    public TimedHandOff<T>? Offer(T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (Interlocked.Increment(ref _count) > maxPending)
        {
            Interlocked.Decrement(ref _count);
            value.Dispose();
            return null;
        }

        return new TimedHandOff<T>(this, value, lifetime);
    }

    /// <summary>Disposes every pending hand-off's value.</summary>
    public void Dispose()
    {
        foreach (var handOff in _pending.Keys)
        {
            handOff.Dispose();
        }
    }

    internal void Register(TimedHandOff<T> handOff) => _pending[handOff] = 0;

    internal void Forget(TimedHandOff<T> handOff)
    {
        if (_pending.TryRemove(handOff, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }
}
