namespace BackupFuse.Core;

// Design notes:
// - Test-only: nothing in src/ uses it, so it lives in the testing project. It keeps the namespace
//   BackupFuse.Core of the Core types it models, so test files written against it in Core need no change.

/// <summary>
/// A writable source in memory with per-block allocation tracking, used as the model in tests. Unwritten blocks
/// report <see cref="ExtentKind.Unallocated"/>. Thread-safe via one lock: it is a model, not a hot path.
/// </summary>
public sealed class MemorySource : BlockSource
{
    private readonly byte[] _data;
    private readonly bool[] _allocated;
    private readonly int _blockSize;
    private readonly object _lock = new();

    /// <summary>Creates a zero-filled source of <paramref name="length"/> bytes.</summary>
    public MemorySource(long length, int blockSize = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (blockSize <= 0 || (blockSize & (blockSize - 1)) != 0)
        {
            throw new ArgumentException("block size must be a power of two", nameof(blockSize));
        }

        _data = new byte[length];
        _blockSize = blockSize;
        _allocated = new bool[(length + blockSize - 1) / blockSize];
    }

    /// <summary>Creates a source holding a copy of <paramref name="content"/>, all of it allocated.</summary>
    public MemorySource(ReadOnlySpan<byte> content, int blockSize = 4096)
        : this(content.Length, blockSize)
    {
        content.CopyTo(_data);
        Array.Fill(_allocated, true);
    }

    /// <inheritdoc/>
    public override long Length => _data.LongLength;

    /// <inheritdoc/>
    public override int BlockSize => _blockSize;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        lock (_lock)
        {
            _data.AsSpan(checked((int)offset), buffer.Length).CopyTo(buffer);
        }
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        AssertRange(offset, data.Length);
        lock (_lock)
        {
            data.CopyTo(_data.AsSpan(checked((int)offset)));
            if (!data.IsEmpty)
            {
                for (long b = offset / _blockSize; b <= (offset + data.Length - 1) / _blockSize; b++)
                {
                    _allocated[b] = true;
                }
            }
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        lock (_lock)
        {
            long end = Math.Min(Length, offset + maxLength);
            bool first = _allocated[offset / _blockSize];
            long pos = (offset / _blockSize + 1) * _blockSize;
            while (pos < end && _allocated[pos / _blockSize] == first)
            {
                pos += _blockSize;
            }

            return new Extent(offset, Math.Min(pos, end) - offset, first ? ExtentKind.Data : ExtentKind.Unallocated);
        }
    }

    /// <summary>A copy of the whole content.</summary>
    public byte[] ToArray()
    {
        lock (_lock)
        {
            return (byte[])_data.Clone();
        }
    }
}
