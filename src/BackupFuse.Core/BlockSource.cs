using System.Diagnostics;

namespace BackupFuse.Core;

/// <summary>
/// Base class with the defaults every layer may keep: read-only, flush does nothing, everything is data.
/// Layers override only what they serve.
/// </summary>
public abstract class BlockSource : IBlockSource
{
    private int _disposed;

    /// <inheritdoc/>
    public abstract long Length { get; }

    /// <inheritdoc/>
    public virtual int BlockSize => 512;

    /// <inheritdoc/>
    public virtual bool CanWrite => false;

    /// <inheritdoc/>
    public abstract void Read(long offset, Span<byte> buffer);

    /// <inheritdoc/>
    public virtual void Write(long offset, ReadOnlySpan<byte> data) =>
        throw new NotSupportedException($"{GetType().Name} is read-only.");

    /// <inheritdoc/>
    public virtual void Flush()
    {
    }

    /// <inheritdoc/>
    public virtual Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        return new Extent(offset, Math.Min(maxLength, Length - offset), ExtentKind.Data);
    }

    /// <inheritdoc/>
    public virtual bool ReadsPartCheaply(long offset, int length) => false;

    /// <summary>Asserts the caller kept the range contract (checked for real only at the top of a stack).</summary>
    [Conditional("DEBUG")]
    protected void AssertRange(long offset, long length) =>
        Debug.Assert(offset >= 0 && length >= 0 && offset + length <= Length, $"range {offset}+{length} outside 0..{Length}");

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless the range lies inside the source.</summary>
    public static void CheckRange(IBlockSource source, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (offset < 0 || length < 0 || offset > source.Length - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} lies outside 0..{source.Length}");
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Dispose(true);
            GC.SuppressFinalize(this);
        }
    }

    /// <summary>Releases what the layer holds.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}
