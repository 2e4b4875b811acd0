namespace BackupFuse.Core;

/// <summary>
/// A layer over another source: every member forwards to <see cref="Next"/> unless overridden, so a filter
/// states only what it changes (nbdkit filters work the same way). The filter owns <see cref="Next"/>.
/// </summary>
public abstract class BlockFilter(IBlockSource next) : BlockSource
{
    /// <summary>The layer below.</summary>
    protected IBlockSource Next { get; } = next ?? throw new ArgumentNullException(nameof(next));

    /// <inheritdoc/>
    public override long Length => Next.Length;

    /// <inheritdoc/>
    public override int BlockSize => Next.BlockSize;

    /// <inheritdoc/>
    public override bool CanWrite => Next.CanWrite;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer) => Next.Read(offset, buffer);

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data) => Next.Write(offset, data);

    /// <inheritdoc/>
    public override void Flush() => Next.Flush();

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength) => Next.GetExtent(offset, maxLength);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Next.Dispose();
        }
    }
}
