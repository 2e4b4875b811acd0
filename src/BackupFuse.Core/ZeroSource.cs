namespace BackupFuse.Blocks;

/// <summary>A read-only source of zeros; the bottom of a stack that must read as an empty disk.</summary>
public sealed class ZeroSource(long length) : BlockSource
{
    /// <inheritdoc/>
    public override long Length { get; } = length;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        buffer.Clear();
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        return new Extent(offset, Math.Min(maxLength, Length - offset), ExtentKind.Zero);
    }
}
