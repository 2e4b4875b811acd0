using BackupFuse.Core;

namespace BackupFuse.Testing;

/// <summary>
/// A deterministic read-only source: byte k is a function of (seed, k), cheap to compute at any offset, so
/// any read of any layer can be checked without keeping the expected bytes. Optional zero runs make it sparse:
/// every <c>zeroEvery</c>-th block of <c>zeroBlock</c> bytes reads as zeros and reports <see cref="ExtentKind.Zero"/>.
/// </summary>
public sealed class PatternSource(long length, ulong seed = 1, int zeroBlock = 0, int zeroEvery = 0) : BlockSource
{
    /// <inheritdoc/>
    public override long Length { get; } = length;

    /// <summary>The expected byte at <paramref name="offset"/>.</summary>
    public byte ByteAt(long offset)
    {
        if (IsZero(offset))
        {
            return 0;
        }

        ulong word = ((ulong)(offset >> 3) * 0x9E3779B97F4A7C15UL) + seed;
        word ^= word >> 29;
        return (byte)(word >> (int)((offset & 7) * 8));
    }

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        for (int i = 0; i < buffer.Length; i++)
        {
            buffer[i] = ByteAt(offset + i);
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        long end = Math.Min(Length, offset + maxLength);
        if (zeroBlock <= 0)
        {
            return new Extent(offset, end - offset, ExtentKind.Data);
        }

        bool zero = IsZero(offset);
        long pos = ((offset / zeroBlock) + 1) * zeroBlock;
        while (pos < end && IsZero(pos) == zero)
        {
            pos += zeroBlock;
        }

        return new Extent(offset, Math.Min(pos, end) - offset, zero ? ExtentKind.Zero : ExtentKind.Data);
    }

    private bool IsZero(long offset) => zeroBlock > 0 && zeroEvery > 0 && (offset / zeroBlock) % zeroEvery == 0;
}
