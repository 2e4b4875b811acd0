using BackupFuse.Core;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - A disk stored at a fixed offset inside a larger file (the synthesized VHDX: disk byte d is file byte
//   PayloadOffset + d), shown as the plain disk: reads, writes, extents and flushes are the file's, shifted. Writes
//   go to the file at the same translated offset, so everything the file does with them (the switch to changes on
//   the first write, the patch store for the rounded-up tail past the backup's last byte) applies unchanged, and a
//   guest of this view and a guest of the VHDX see the same bytes.
// - Non-owning: the file belongs to the caller. Thread-safe as the file is (no state of its own).
// - Deliberately not done: any check of what the file holds at that offset (the caller chose the offset).

/// <summary>The disk held at a fixed offset of a file, as a block source of its own.</summary>
public sealed class RawDiskView : BlockSource
{
    private readonly IBlockSource _file;
    private readonly long _offset;
    private readonly long _length;
    private readonly int _blockSize;

    /// <summary>The <paramref name="length"/> bytes of <paramref name="file"/> from <paramref name="offset"/> on.</summary>
    /// <param name="file">The file holding the disk (not owned).</param>
    /// <param name="offset">File offset of disk byte 0.</param>
    /// <param name="length">Disk length.</param>
    /// <param name="blockSize">The disk's preferred request alignment (its logical sector size).</param>
    public RawDiskView(IBlockSource file, long offset, long length, int blockSize = 512)
    {
        _file = file ?? throw new ArgumentNullException(nameof(file));
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (offset > file.Length - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"disk {offset}+{length} lies outside the file's {file.Length} bytes");
        }

        _offset = offset;
        _length = length;
        _blockSize = blockSize;
    }

    /// <inheritdoc/>
    public override long Length => _length;

    /// <inheritdoc/>
    public override int BlockSize => _blockSize;

    /// <inheritdoc/>
    public override bool CanWrite => _file.CanWrite;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        _file.Read(_offset + offset, buffer);
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        AssertRange(offset, data.Length);
        _file.Write(_offset + offset, data);
    }

    /// <inheritdoc/>
    public override void Flush() => _file.Flush();

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var e = _file.GetExtent(_offset + offset, Math.Min(maxLength, _length - offset));
        return new Extent(offset, Math.Min(e.Length, _length - offset), e.Kind);
    }
}
