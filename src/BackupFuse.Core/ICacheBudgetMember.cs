namespace BackupFuse.Core;

/// <summary>A cache that holds bytes of a <see cref="CacheBudget"/> and can give its least recently used item back.</summary>
public interface ICacheBudgetMember
{
    /// <summary>
    /// The last-use stamp (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>) of the member's least recently used
    /// item, or <see cref="long.MaxValue"/> when it holds nothing. Read without the member's lock: a hint for choosing
    /// whom to evict from, not a promise.
    /// </summary>
    long OldestUse { get; }

    /// <summary>
    /// Evicts the member's least recently used item that nobody is using and releases its bytes to the budget. Must
    /// not block: it only tries the member's lock (re-entrant for a thread that already holds it). False when nothing
    /// could be evicted now.
    /// </summary>
    bool TryEvictOldest();
}
