using BackupFuse.Core;

namespace BackupFuse.Fuzz;

/// <summary>A read-only block source over a byte array: the disk the seed writers back up, or a VHDX input.</summary>
public sealed class ByteSource(byte[] bytes) : BlockSource
{
    /// <inheritdoc/>
    public override long Length => bytes.LongLength;

    /// <inheritdoc/>
    public override int BlockSize => 512;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        if (offset < 0 || offset > bytes.LongLength - buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"read {offset}+{buffer.Length} is outside 0..{bytes.LongLength}");
        }

        bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer);
    }
}
