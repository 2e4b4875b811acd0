using System.Runtime.CompilerServices;

namespace BackupFuse.Core;

// Design notes:
// - Layers are ordered newest first. For any byte, the first layer whose GetExtent is not Unallocated answers;
//   below the oldest layer everything reads as zeros. That one rule is the whole merge (QEMU block_status).
// - A run is cut at the shortest Unallocated extent seen in the layers above the one that answers, so every
//   byte of a run has the same owner.
// - Thread-safe as long as the layers are; the chain keeps no state of its own.
// - Writes are not supported here: writes go to a differencing overlay above the chain.
// - Every layer has the chain's length (checked at construction): a shorter incremental is a format error
//   that the image layer reports before a chain is built.

/// <summary>A chain of layers (an incremental over its parents) read as one disk.</summary>
public sealed class ChainSource : BlockSource
{
    private readonly IBlockSource[] _layers;

    /// <summary>Builds a chain from layers ordered newest first. The chain owns the layers.</summary>
    public ChainSource(IReadOnlyList<IBlockSource> newestFirst)
    {
        ArgumentNullException.ThrowIfNull(newestFirst);
        if (newestFirst.Count == 0)
        {
            throw new ArgumentException("a chain needs at least one layer", nameof(newestFirst));
        }

        _layers = [.. newestFirst];
        Length = _layers[0].Length;
        foreach (var layer in _layers)
        {
            if (layer.Length != Length)
            {
                throw new InvalidDataException($"chain layers differ in size: {layer.Length} vs {Length}");
            }
        }
    }

    /// <summary>The layers, newest first.</summary>
    public IReadOnlyList<IBlockSource> Layers => _layers;

    /// <inheritdoc/>
    public override long Length { get; }

    /// <inheritdoc/>
    public override int BlockSize => _layers[0].BlockSize;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        int done = 0;
        while (done < buffer.Length)
        {
            long pos = offset + done;
            var (layer, extent) = Resolve(pos, buffer.Length - done);
            var piece = buffer.Slice(done, (int)extent.Length);
            if (extent.Kind == ExtentKind.Data)
            {
                layer!.Read(pos, piece);
            }
            else
            {
                piece.Clear();
            }

            done += piece.Length;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var (_, extent) = Resolve(offset, Math.Min(maxLength, Length - offset));
        return extent;
    }

    /// <inheritdoc/>
    public override bool ReadsPartCheaply(long offset, int length)
    {
        AssertRange(offset, length);
        var (layer, extent) = Resolve(offset, length);
        return extent.Length >= length && (extent.Kind != ExtentKind.Data || layer!.ReadsPartCheaply(offset, length));
    }

    /// <summary>The layer that answers at <paramref name="offset"/> and the run it answers for (Data or Zero).</summary>
    private (IBlockSource? Layer, Extent Extent) Resolve(long offset, long maxLength)
    {
        foreach (var layer in _layers)
        {
            var e = layer.GetExtent(offset, maxLength);
            if (e.Kind != ExtentKind.Unallocated)
            {
                return (layer, e);
            }

            maxLength = e.Length;
        }

        return (null, new Extent(offset, maxLength, ExtentKind.Zero));
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var layer in _layers)
            {
                layer.Dispose();
            }
        }
    }
}
