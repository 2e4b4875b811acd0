using BackupFuse.Core;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - In a chain of file-level images each child's data stream is longer than its parent's (it appends to it), while
//   ChainSource needs layers of one length. This wraps an older, shorter layer to the chain's length: inside the layer
//   it answers as the layer does; beyond it, it holds nothing (Unallocated), so the layers above answer and the bottom
//   reads zeros. Block images never need it (their chain checks equal sizes).
// - Owns the wrapped layer (ChainSource owns its layers). Thread-safe as the layer is.

/// <summary>A chain layer lengthened to the chain's length; the added part is Unallocated.</summary>
internal sealed class ExtendedLayerSource : BlockSource
{
    private readonly IBlockSource _inner;

    public ExtendedLayerSource(IBlockSource inner, long length)
    {
        _inner = inner;
        if (length < inner.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"{length} is shorter than the layer ({inner.Length})");
        }

        Length = length;
    }

    /// <inheritdoc/>
    public override long Length { get; }

    /// <inheritdoc/>
    public override int BlockSize => _inner.BlockSize;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        long innerLength = _inner.Length;
        int inside = (int)Math.Clamp(innerLength - offset, 0, buffer.Length);
        if (inside > 0)
        {
            _inner.Read(offset, buffer[..inside]);
        }

        buffer[inside..].Clear();
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        long innerLength = _inner.Length;
        return offset < innerLength
            ? _inner.GetExtent(offset, Math.Min(maxLength, innerLength - offset))
            : new Extent(offset, Math.Min(maxLength, Length - offset), ExtentKind.Unallocated);
    }

    /// <inheritdoc/>
    public override bool ReadsPartCheaply(long offset, int length)
    {
        AssertRange(offset, length);
        long innerLength = _inner.Length;
        return offset >= innerLength || (offset + length <= innerLength && _inner.ReadsPartCheaply(offset, length));
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }
    }
}
