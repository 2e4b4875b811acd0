namespace BackupFuse.Fuzz;

/// <summary>A target broke its contract without throwing (runaway allocation, a hang, a result that does not round-trip).</summary>
public sealed class FuzzFailureException : Exception
{
    /// <summary>A failure described by <paramref name="message"/>.</summary>
    public FuzzFailureException(string message)
        : base(message)
    {
    }

    /// <summary>A failure described by <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public FuzzFailureException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>An unspecified failure.</summary>
    public FuzzFailureException()
    {
    }
}
