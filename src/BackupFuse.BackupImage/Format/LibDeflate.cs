using System.Runtime.InteropServices;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - libdeflate (Debian package libdeflate0) compresses and decompresses whole buffers only, which is exactly what a
//   chunk is, and does it markedly faster than a streaming zlib (docs/benchmarks.md has the figures). Its raw Deflate
//   streams are ordinary RFC 1951 streams: images written with either library read with either.
// - Optional: when libdeflate.so.0 cannot be loaded, Available is false and ChunkCompressor uses the runtime's
//   zlib-ng. BACKUPFUSE_DEFLATE=zlib forces the runtime's library (for comparisons and tests).
// - A libdeflate (de)compressor object is not thread-safe; each thread keeps its own, created on first use and
//   freed only with the thread's process (a handful of threads, a few hundred KiB each at most).

/// <summary>P/Invoke binding to libdeflate's whole-buffer raw Deflate functions, one (de)compressor per thread.</summary>
internal static unsafe class LibDeflate
{
    private const int Success = 0;

    [ThreadStatic]
    private static nint t_decompressor;

    [ThreadStatic]
    private static nint t_compressor;

    [ThreadStatic]
    private static int t_compressorLevel;

    private static readonly delegate* unmanaged<nint> AllocDecompressorFn;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint*, nuint*, int> DecompressExFn;
    private static readonly delegate* unmanaged<int, nint> AllocCompressorFn;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> CompressFn;
    private static readonly delegate* unmanaged<nint, void> FreeCompressorFn;

    static LibDeflate()
    {
        SwitchedOff = Environment.GetEnvironmentVariable("BACKUPFUSE_DEFLATE") == "zlib";
        if (SwitchedOff || !NativeLibrary.TryLoad("libdeflate.so.0", typeof(LibDeflate).Assembly, null, out nint lib))
        {
            return;
        }

        if (NativeLibrary.TryGetExport(lib, "libdeflate_alloc_decompressor", out nint a)
            && NativeLibrary.TryGetExport(lib, "libdeflate_deflate_decompress_ex", out nint d)
            && NativeLibrary.TryGetExport(lib, "libdeflate_alloc_compressor", out nint ac)
            && NativeLibrary.TryGetExport(lib, "libdeflate_deflate_compress", out nint c)
            && NativeLibrary.TryGetExport(lib, "libdeflate_free_compressor", out nint fc))
        {
            AllocDecompressorFn = (delegate* unmanaged<nint>)a;
            DecompressExFn = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint*, nuint*, int>)d;
            AllocCompressorFn = (delegate* unmanaged<int, nint>)ac;
            CompressFn = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)c;
            FreeCompressorFn = (delegate* unmanaged<nint, void>)fc;
            Available = true;
        }
    }

    /// <summary>Whether libdeflate was found (and not switched off with BACKUPFUSE_DEFLATE=zlib).</summary>
    public static bool Available { get; }

    /// <summary>Whether BACKUPFUSE_DEFLATE=zlib asked for the runtime's zlib-ng.</summary>
    public static bool SwitchedOff { get; }

    /// <summary>
    /// Decompresses one raw Deflate stream that must fill <paramref name="destination"/> exactly and end exactly at
    /// the end of <paramref name="source"/>; false for anything else.
    /// </summary>
    public static bool TryDecompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        nint d = t_decompressor;
        if (d == 0)
        {
            d = t_decompressor = AllocDecompressorFn();
            if (d == 0)
            {
                throw new OutOfMemoryException("libdeflate could not allocate a decompressor");
            }
        }

        nuint inUsed, outWritten;
        int result;
        fixed (byte* i = source)
        fixed (byte* o = destination)
        {
            result = DecompressExFn(d, i, (nuint)source.Length, o, (nuint)destination.Length, &inUsed, &outWritten);
        }

        return result == Success && inUsed == (nuint)source.Length && outWritten == (nuint)destination.Length;
    }

    /// <summary>Compresses into <paramref name="destination"/>; 0 when the result does not fit.</summary>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        nint c = t_compressor;
        if (c == 0 || t_compressorLevel != level)
        {
            if (c != 0)
            {
                FreeCompressorFn(c);
            }

            c = t_compressor = AllocCompressorFn(level);
            t_compressorLevel = level;
            if (c == 0)
            {
                throw new OutOfMemoryException($"libdeflate could not allocate a level {level} compressor");
            }
        }

        fixed (byte* i = source)
        fixed (byte* o = destination)
        {
            return (int)CompressFn(c, i, (nuint)source.Length, o, (nuint)destination.Length);
        }
    }
}
