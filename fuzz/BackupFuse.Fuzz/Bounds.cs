namespace BackupFuse.Fuzz;

// Design notes:
// - The time and memory bound of one input, the same under AFL and in the regression tests. Memory: the bytes the
//   thread allocated while parsing (GC.GetAllocatedBytesForCurrentThread; targets parse on the calling thread) must
//   stay under AllocationLimit; AFL's own hang timeout (-t) and DOTNET_GCHeapHardLimit (scripts/fuzz.sh) catch the rest.
//   Time: Replay runs each input on its own thread and calls an input that takes longer than TimeLimit a hang.
// - An input that breaks a bound raises FuzzFailureException, which no target catches: a crash for AFL.

/// <summary>Runs a target on one input within the time and memory bounds.</summary>
public static class Bounds
{
    /// <summary>Most bytes one input may allocate (64 MiB: a parser of a 1 MiB input has no reason to need more).</summary>
    public const long AllocationLimit = 64L << 20;

    /// <summary>Longest one input may take in a replay.</summary>
    public static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(10);

    /// <summary>Runs <paramref name="target"/> on <paramref name="input"/> on this thread, checking the allocation bound.</summary>
    /// <exception cref="FuzzFailureException">The input allocated more than <see cref="AllocationLimit"/>.</exception>
    public static void Run(FuzzTarget target, byte[] input)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(input);
        if (input.Length > target.MaxInputLength)
        {
            input = input[..target.MaxInputLength];
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        target.Run(input);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated > AllocationLimit)
        {
            throw new FuzzFailureException($"{target.Name}: one input of {input.Length} bytes allocated {allocated} bytes (limit {AllocationLimit})");
        }
    }

    /// <summary>
    /// Runs one input as <see cref="Run"/> does, on its own thread, within <see cref="TimeLimit"/>; null when it passes,
    /// else what went wrong (the exception, or the hang).
    /// </summary>
    public static Exception? Check(FuzzTarget target, byte[] input)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Run(target, input);
            }
#pragma warning disable CA1031 // every escaping exception is the finding this reports
            catch (Exception e)
#pragma warning restore CA1031
            {
                failure = e;
            }
        }, maxStackSize: 16 << 20) { IsBackground = true, Name = $"fuzz {target.Name}" };
        thread.Start();
        if (!thread.Join(TimeLimit))
        {
            return new FuzzFailureException($"{target.Name}: the input did not finish within {TimeLimit.TotalSeconds:0} s (a hang)");
        }

        return failure;
    }
}
