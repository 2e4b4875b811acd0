using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Writing;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - Turns the data stream of a file-level image, given front to back, into chunks for ImageStreamWriter: bytes are
//   appended at Position, gaps (alignment padding) are zeros, and each full chunk is hashed, compressed and stored. An
//   all-zero chunk is left Absent: in a full image that reads as zeros, and in an incremental the stream starts past
//   the parent's end (the chain reads zeros there too), so Absent is always right.
// - The stream starts at a chunk boundary (Start); chunks before it are never given (an incremental leaves the
//   parent's part unallocated).
// - Compression runs on the calling thread: one chunk buffer and one output buffer, memory independent of the tree.
//   Single-threaded, like the writer it feeds.

/// <summary>Chunks a sequentially written data stream into an image.</summary>
internal sealed class StreamChunkSink
{
    private readonly ImageStreamWriter _writer;
    private readonly ChunkCodec _codec;
    private readonly int _level;
    private readonly byte[] _chunk;
    private readonly byte[] _compressed;
    private int _fill;

    public StreamChunkSink(ImageStreamWriter writer, ImageHeader header, BackupOptions options, long start)
    {
        _writer = writer;
        _codec = header.Codec;
        _level = header.Codec == ChunkCodec.Zstd ? options.ZstdLevel : options.DeflateLevel;
        _chunk = new byte[header.ChunkSize];
        _compressed = new byte[header.ChunkSize];
        if (start % header.ChunkSize != 0)
        {
            throw new ArgumentException($"the stream must start at a chunk boundary ({start})", nameof(start));
        }

        Position = start;
    }

    /// <summary>Stream offset of the next byte.</summary>
    public long Position { get; private set; }

    /// <summary>Appends <paramref name="bytes"/> at <see cref="Position"/>.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            int n = Math.Min(bytes.Length, _chunk.Length - _fill);
            bytes[..n].CopyTo(_chunk.AsSpan(_fill));
            _fill += n;
            Position += n;
            bytes = bytes[n..];
            if (_fill == _chunk.Length)
            {
                Emit();
            }
        }
    }

    /// <summary>Advances to <paramref name="position"/> (not before <see cref="Position"/>); the gap reads as zeros.</summary>
    public void SkipTo(long position)
    {
        if (position < Position)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"{position} is before the stream position {Position}");
        }

        long inChunkRoom = _chunk.Length - _fill;
        if (position - Position < inChunkRoom || _fill == 0)
        {
            if (_fill == 0)
            {
                // Whole zero chunks are skipped without work; the start of the next piece is zero-filled.
                long chunkStart = position - (position % _chunk.Length);
                Position = chunkStart;
            }

            int n = (int)(position - Position);
            _chunk.AsSpan(_fill, n).Clear();
            _fill += n;
            Position = position;
            return;
        }

        _chunk.AsSpan(_fill).Clear();
        Position += inChunkRoom;
        _fill = _chunk.Length;
        Emit();
        SkipTo(position);
    }

    /// <summary>Stores the last, partial chunk.</summary>
    public void Finish()
    {
        if (_fill > 0)
        {
            Emit();
        }
    }

    private void Emit()
    {
        var data = _chunk.AsSpan(0, _fill);
        long chunk = (Position - 1) / _chunk.Length;
        _fill = 0;
        if (data.IndexOfAnyExcept((byte)0) < 0)
        {
            return;
        }

        var hash = ChunkHash.Of(data);
        if (_codec != ChunkCodec.None && ChunkCompressor.TryCompress(_codec, data, _compressed, _level, out int written))
        {
            _writer.AddData(chunk, hash, _compressed.AsSpan(0, written), ChunkFlags.Compressed);
        }
        else
        {
            _writer.AddData(chunk, hash, data, ChunkFlags.None);
        }
    }
}
