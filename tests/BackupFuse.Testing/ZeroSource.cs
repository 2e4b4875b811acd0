namespace BackupFuse.Core;

// Design notes:
// - Test-only: nothing in src/ uses it, so it lives in the testing project. It keeps the namespace
//   BackupFuse.Core of the Core types it models, so test files written against it in Core need no change.

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
