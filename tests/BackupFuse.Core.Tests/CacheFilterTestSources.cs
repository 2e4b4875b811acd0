using System.Collections.Concurrent;
using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

// Layers for the cache filter tests (CacheFilterTests, CacheFilterSchedulingTests, CacheBudgetTests): each wraps a real
// source and changes one thing the cache reacts to: cost, plainness, cheap parts, counts of reads, or a gate.

/// <summary>
/// Makes every read that starts below <c>slowBelow</c> (all of them by default) cost at least <c>delayMs</c> (1 ms
/// default), so the cache measures it as expensive, or so other threads finish their loads meanwhile.
/// </summary>
internal sealed class SlowSource(IBlockSource next, int delayMs = 1, long slowBelow = long.MaxValue) : BlockFilter(next)
{
    public override void Read(long offset, Span<byte> buffer)
    {
        if (offset < slowBelow)
        {
            Thread.Sleep(delayMs);
        }

        base.Read(offset, buffer);
    }
}

/// <summary>Says that whole aligned blocks read as plain copies (as raw chunks without sector checksums do).</summary>
internal sealed class PlainBlocksSource(IBlockSource next, int block) : BlockFilter(next)
{
    public override bool ReadsPartCheaply(long offset, int length) => offset % block == 0 && length == block;
}

/// <summary>
/// Whole aligned blocks for which <c>isPlain(block)</c> holds read as plain copies, the others are "compressed"; counts
/// the reads of each block.
/// </summary>
internal sealed class TrackedSource(IBlockSource next, int block, Func<long, bool> isPlain) : BlockFilter(next)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, int> _reads = new();

    public int Reads(long blockIndex) => _reads.TryGetValue(blockIndex, out int n) ? n : 0;

    public override bool ReadsPartCheaply(long offset, int length) => offset % block == 0 && length == block && isPlain(offset / block);

    public override void Read(long offset, Span<byte> buffer)
    {
        for (long b = offset / block; b * block < offset + buffer.Length; b++)
        {
            _reads.AddOrUpdate(b, 1, (_, n) => n + 1);
        }

        base.Read(offset, buffer);
    }
}

/// <summary>Says that parts below <c>cheapBelow</c> read cheaply (as a raw chunk with sector checksums does).</summary>
internal sealed class CheapPartsSource(IBlockSource next, long cheapBelow) : BlockFilter(next)
{
    public override bool ReadsPartCheaply(long offset, int length) => offset + length <= cheapBelow;
}

internal sealed class CountingSource(IBlockSource next) : BlockFilter(next)
{
    private int _reads;
    private int _active;
    private int _maxConcurrent;

    public int Reads => Volatile.Read(ref _reads);

    public int Active => Volatile.Read(ref _active);

    public int MaxConcurrent => Volatile.Read(ref _maxConcurrent);

    public bool Disposed { get; private set; }

    public override void Read(long offset, Span<byte> buffer)
    {
        Interlocked.Increment(ref _reads);
        int now = Interlocked.Increment(ref _active);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxConcurrent)) && Interlocked.CompareExchange(ref _maxConcurrent, now, seen) != seen)
        {
        }

        try
        {
            base.Read(offset, buffer);
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }

    protected override void Dispose(bool disposing)
    {
        Disposed = true;
        base.Dispose(disposing);
    }
}

/// <summary>The first read blocks until released; counts reads.</summary>
internal sealed class GatedSource(IBlockSource next) : BlockFilter(next)
{
    private int _reads;

    public ManualResetEventSlim Entered { get; } = new();

    public ManualResetEventSlim Release { get; } = new();

    public int Reads => Volatile.Read(ref _reads);

    public override void Read(long offset, Span<byte> buffer)
    {
        Interlocked.Increment(ref _reads);
        Entered.Set();
        Release.Wait(TimeSpan.FromSeconds(30));
        base.Read(offset, buffer);
    }
}
