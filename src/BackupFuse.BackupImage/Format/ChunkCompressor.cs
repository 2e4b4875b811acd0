using System.IO.Compression;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - Raw Deflate, one independent stream per chunk so any chunk decompresses alone: through libdeflate when the
//   system has it (whole-buffer, about 1.6x faster to inflate; see LibDeflate), otherwise through the runtime's
//   zlib-ng (System.IO.Compression) with streams over caller-owned (pooled) arrays. Either reads what the other
//   wrote (tested both ways); the choice is made once per process.
// - Compression that does not save at least one byte reports false; the caller then stores the chunk raw.
// - Decompression must produce exactly the expected length and end there; anything else is corrupt input.

/// <summary>Per-chunk Deflate compression and decompression into caller-supplied buffers.</summary>
public static class ChunkCompressor
{
    /// <summary>
    /// The default Deflate level: 1 with libdeflate, 2 with the runtime's zlib-ng; either stores about what qemu's
    /// zlib qcow2 stores, in a fraction of its time (docs/format.md has the measurement).
    /// </summary>
    public static int DefaultLevel => LibDeflate.Available ? 1 : 2;

    /// <summary>Which Deflate implementation this process uses, for <c>--version</c> and benchmark reports.</summary>
    public static string Implementation => LibDeflate.Available ? "libdeflate (libdeflate.so.0)"
        : LibDeflate.SwitchedOff ? "the runtime's zlib-ng (BACKUPFUSE_DEFLATE=zlib)"
        : "the runtime's zlib-ng (libdeflate.so.0 not found: install libdeflate0 for faster reads and backups)";

    /// <summary>
    /// Compresses <paramref name="source"/> into <paramref name="destination"/>; false when the result would not be
    /// smaller than the source (store raw then).
    /// </summary>
    public static bool TryCompress(ReadOnlySpan<byte> source, byte[] destination, int level, out int written) =>
        LibDeflate.Available ? TryCompressWithLibDeflate(source, destination, level, out written) : TryCompressWithZlib(source, destination, level, out written);

    /// <summary>Decompresses into exactly <paramref name="destination"/>; false when the data is not a stream of that length.</summary>
    public static bool TryDecompress(byte[] source, int offset, int length, Span<byte> destination) =>
        LibDeflate.Available ? LibDeflate.TryDecompress(source.AsSpan(offset, length), destination) : TryDecompressWithZlib(source, offset, length, destination);

    internal static bool TryCompressWithLibDeflate(ReadOnlySpan<byte> source, byte[] destination, int level, out int written)
    {
        int capacity = Math.Min(destination.Length, source.Length - 1);
        written = capacity <= 0 ? 0 : LibDeflate.Compress(source, destination.AsSpan(0, capacity), level);
        return written > 0;
    }

    internal static bool TryCompressWithZlib(ReadOnlySpan<byte> source, byte[] destination, int level, out int written)
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

    internal static bool TryDecompressWithZlib(byte[] source, int offset, int length, Span<byte> destination)
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
