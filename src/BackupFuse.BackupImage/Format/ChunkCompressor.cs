using System.IO.Compression;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - Raw Deflate, one independent stream per chunk so any chunk decompresses alone: through libdeflate when the
//   system has it (whole-buffer, about 1.6x faster to inflate; see LibDeflate), otherwise through the runtime's
//   zlib-ng (System.IO.Compression) with streams over caller-owned (pooled) arrays. Either reads what the other
//   wrote (tested both ways); the choice is made once per process.
// - Compression that does not save at least one byte reports false; the caller then stores the chunk raw.
// - Decompression must produce exactly the expected length and end there; anything else is corrupt input.
// - zstd (ChunkCodec.Zstd): one frame per chunk through the system's libzstd (LibZstd); there is no managed fallback.
// - The codec is a property of the image (header byte 72), not of a chunk: callers pass the image's codec. Code that
//   moves compressed payloads between images (ImageFolder) must recompress when the codecs differ (Transcode).

/// <summary>Per-chunk Deflate or zstd compression and decompression into caller-supplied buffers.</summary>
public static class ChunkCompressor
{
    /// <summary>The default zstd level (see docs/format.md for the measurement).</summary>
    public const int DefaultZstdLevel = 3;

    /// <summary>Whether the system's libzstd is there (writing zstd needs it; reading a zstd chunk too).</summary>
    public static bool ZstdAvailable => LibZstd.Available;

    /// <summary>The highest zstd level accepted.</summary>
    public static int MaxZstdLevel => LibZstd.MaxLevel;

    /// <summary>Which zstd library this process uses, for <c>--version</c>.</summary>
    public static string ZstdImplementation => LibZstd.Version is { } v ? $"libzstd {v} ({LibZstd.LibraryName})" : $"none ({LibZstd.LibraryName} not found: install libzstd1 to read and write zstd images)";

    /// <summary>The default level of <paramref name="codec"/> (0 for <see cref="ChunkCodec.None"/>).</summary>
    public static int DefaultLevelOf(ChunkCodec codec) => codec switch
    {
        ChunkCodec.Deflate => DefaultLevel,
        ChunkCodec.Zstd => DefaultZstdLevel,
        _ => 0,
    };

    /// <summary>
    /// Compresses with <paramref name="codec"/> (Deflate or zstd) at <paramref name="level"/>; false when the result would
    /// not be smaller than the source (store raw then).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="codec"/> is None or unknown.</exception>
    public static bool TryCompress(ChunkCodec codec, ReadOnlySpan<byte> source, Span<byte> destination, int level, out int written)
    {
        switch (codec)
        {
            case ChunkCodec.Deflate:
                return TryCompress(source, destination, level, out written);
            case ChunkCodec.Zstd:
                int capacity = Math.Min(destination.Length, source.Length - 1);
                written = capacity <= 0 ? 0 : LibZstd.Compress(source, destination[..capacity], level);
                return written > 0;
            default:
                throw new ArgumentOutOfRangeException(nameof(codec), codec, "not a compression codec");
        }
    }

    /// <summary>
    /// Decompresses a payload written with <paramref name="codec"/> into exactly <paramref name="destination"/>; false when
    /// the data is not a stream or frame of that length (or the codec is None or unknown).
    /// </summary>
    /// <exception cref="InvalidDataException">The codec is zstd and libzstd cannot be loaded.</exception>
    public static bool TryDecompress(ChunkCodec codec, byte[] source, int offset, int length, Span<byte> destination) => codec switch
    {
        ChunkCodec.Deflate => TryDecompress(source, offset, length, destination),
        ChunkCodec.Zstd => LibZstd.TryDecompress(source.AsSpan(offset, length), destination),
        _ => false,
    };

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
    public static bool TryCompress(ReadOnlySpan<byte> source, Span<byte> destination, int level, out int written) =>
        LibDeflate.Available ? TryCompressWithLibDeflate(source, destination, level, out written) : TryCompressWithZlib(source, destination, level, out written);

    /// <summary>Decompresses into exactly <paramref name="destination"/>; false when the data is not a stream of that length.</summary>
    public static bool TryDecompress(byte[] source, int offset, int length, Span<byte> destination) =>
        LibDeflate.Available ? LibDeflate.TryDecompress(source.AsSpan(offset, length), destination) : TryDecompressWithZlib(source, offset, length, destination);

    internal static bool TryCompressWithLibDeflate(ReadOnlySpan<byte> source, Span<byte> destination, int level, out int written)
    {
        int capacity = Math.Min(destination.Length, source.Length - 1);
        written = capacity <= 0 ? 0 : LibDeflate.Compress(source, destination[..capacity], level);
        return written > 0;
    }

    internal static bool TryCompressWithZlib(ReadOnlySpan<byte> source, Span<byte> destination, int level, out int written)
    {
        int capacity = Math.Min(destination.Length, source.Length - 1);
        written = 0;
        if (capacity <= 0)
        {
            return false;
        }

        byte[] scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(capacity); // MemoryStream needs an array
        try
        {
            var output = new MemoryStream(scratch, 0, capacity, writable: true);
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
            scratch.AsSpan(0, written).CopyTo(destination);
            return true;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
        }
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
