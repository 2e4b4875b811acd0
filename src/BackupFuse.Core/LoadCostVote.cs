namespace BackupFuse.Core;

// Design notes:
// - Decides whether the layer below a cache is "cheap": loading a block costs about as much as copying it out of the
//   cache (an uncompressed image in the page cache), so whole-block reads should go around the cache and readahead is
//   pointless. Each measured load votes: cheap (+1) when it ran faster than the threshold rate, dear (-1) otherwise.
// - A vote, not an average: one load stretched by preemption (a busy machine) moves the vote by one step, where it
//   would dominate a mean of nanosecond-scale copies. The vote is clamped to +-Limit, so after a long cheap run a
//   change of the layer's cost flips the verdict within Limit+1 loads, and a few slow loads never do.
// - Verdict: cheap only once MinSamples loads were measured and the vote is positive (a tie is dear: cache).
// - Invariants: -Limit <= vote <= Limit; the sample count stops at MinSamples (racing threads may pass it by a
//   few, which changes nothing).
// - Threading: lock-free and deliberately racy. Loads run outside every lock, on several threads at once; a vote
//   lost to a concurrent update only delays a policy change by a step, and costs nothing on the hot path. Reads and
//   writes are volatile, so every thread sees recent votes. A single thread sees exact arithmetic (the unit tests).
// - Not done: timing (the caller measures and reports each load), more than two classes of cost, decay over time.

/// <summary>A clamped vote of measured load costs: are loads cheap enough to bypass a cache?</summary>
public sealed class LoadCostVote
{
    /// <summary>Default number of loads measured before any verdict of "cheap".</summary>
    public const int DefaultMinSamples = 16;

    /// <summary>Default bound of the vote in either direction.</summary>
    public const int DefaultLimit = 16;

    private readonly double _cheapSecondsPerByte;
    private readonly int _minSamples;
    private readonly int _limit;
    private int _vote;
    private int _samples;

    /// <summary>
    /// A vote that counts a load as cheap when it moved more than <paramref name="cheapBytesPerSecond"/>, says "cheap"
    /// after <paramref name="minSamples"/> loads while the vote is positive, and keeps the vote within
    /// +-<paramref name="limit"/>.
    /// </summary>
    public LoadCostVote(double cheapBytesPerSecond, int minSamples = DefaultMinSamples, int limit = DefaultLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cheapBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegative(minSamples);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        _cheapSecondsPerByte = 1 / cheapBytesPerSecond;
        _minSamples = minSamples;
        _limit = limit;
    }

    /// <summary>Whether loads are cheap: enough loads measured and more of the recent ones cheap than dear.</summary>
    public bool IsCheap => Volatile.Read(ref _samples) >= _minSamples && Volatile.Read(ref _vote) > 0;

    /// <summary>The current vote, within +-the limit (positive: cheap).</summary>
    public int Vote => Volatile.Read(ref _vote);

    /// <summary>Loads measured, counted up to the minimum number of samples.</summary>
    public int Samples => Volatile.Read(ref _samples);

    /// <summary>Records a load of <paramref name="bytes"/> (at least 1) that took <paramref name="seconds"/>.</summary>
    public void Record(int bytes, double seconds)
    {
        double sample = seconds / bytes;
        bool cheap = sample < _cheapSecondsPerByte;
        int vote = Volatile.Read(ref _vote);
        Volatile.Write(ref _vote, Math.Clamp(vote + (cheap ? 1 : -1), -_limit, _limit));
        if (Volatile.Read(ref _samples) < _minSamples)
        {
            Interlocked.Increment(ref _samples);
        }
    }
}
