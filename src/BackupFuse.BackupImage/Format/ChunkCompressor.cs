using System.IO.Compression;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - Raw Deflate through the runtime's zlib-ng (System.IO.Compression), one independent stream per chunk so any chunk
//   decompresses alone. Streams wrap caller-owned (pooled) arrays: no chunk-sized allocations per call.
// - Compression that does not save at least one byte reports false; the caller then stores the chunk raw.
// - Decompression must produce exactly the expected length and end there; anything else is corrupt input.

/// <summary>Per-chunk Deflate compression and decompression into caller-supplied buffers.</summary>
public static class ChunkCompressor
{
    /// <summary>The default Deflate level (zlib-ng level 2); see docs/format.md for the measurement behind it.</summary>
    public const int DefaultLevel = 2;

    /// <summary>
    /// Compresses <paramref name="source"/> into <paramref name="destination"/>; false when the result would not be
    /// smaller than the source (store raw then).
    /// </summary>
    public static bool TryCompress(ReadOnlySpan<byte> source, byte[] destination, int level, out int written)
    {
        int capacity = Math.Min(destination.Length, source.Length - 1);
        written = 0;
        if (capacity <= 0)
        {
            return false;
        }

        var output = new MemoryStream(destination, 0, capacity, writable: true);
        try
        {
            using (var deflate = new DeflateStream(output, new ZLibCompressionOptions { CompressionLevel = level }, leaveOpen: true))
            {
                deflate.Write(source);
            }
        }
        catch (NotSupportedException)
        {
            return false; // the fixed-size output is full: compression does not pay for this chunk
        }

        written = (int)output.Position;
        return true;
    }

    /// <summary>Decompresses into exactly <paramref name="destination"/>; false when the data is not a stream of that length.</summary>
    public static bool TryDecompress(byte[] source, int offset, int length, Span<byte> destination)
    {
        try
        {
            using var deflate = new DeflateStream(new MemoryStream(source, offset, length, writable: false), CompressionMode.Decompress);
            int n = deflate.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
            if (n != destination.Length)
            {
                return false;
            }

            Span<byte> extra = stackalloc byte[1];
            return deflate.Read(extra) == 0;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }
}
