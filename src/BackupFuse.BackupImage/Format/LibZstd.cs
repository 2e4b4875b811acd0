using System.Runtime.InteropServices;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - The system's libzstd (Debian package libzstd1, present on every Debian/Ubuntu system since dpkg depends on it)
//   through its one-shot context API: ZSTD_compressCCtx / ZSTD_decompressDCtx on whole buffers, which is exactly
//   what a chunk is. Each chunk is one independent zstd frame (RFC 8878) carrying its content size.
// - Exactness: the decompressor is given a buffer of exactly the chunk length; it fails when the frames would produce
//   more, when the input has bytes after the last frame, or when a frame is damaged, and we also demand that it
//   produced exactly the chunk length. No partial output is ever handed on (the caller clears it on failure).
// - Loaded lazily on first use: a process that never meets a zstd chunk never loads it. When it cannot be loaded,
//   Available is false; writing zstd is then refused and reading a zstd chunk fails with a message naming the library.
// - Contexts are not thread-safe; each thread keeps its own pair, created on first use and kept for the thread's life
//   (a handful of pipeline/FUSE threads; a level-1..3 CCtx is about 1 MiB, a DCtx about 160 KiB).

/// <summary>P/Invoke binding to libzstd's one-shot (de)compression, one context of each kind per thread.</summary>
internal static unsafe class LibZstd
{
    /// <summary>The library's file name.</summary>
    public const string LibraryName = "libzstd.so.1";

    [ThreadStatic]
    private static nint t_dctx;

    [ThreadStatic]
    private static nint t_cctx;

    private static readonly delegate* unmanaged<nint> CreateCCtxFn;
    private static readonly delegate* unmanaged<nint> CreateDCtxFn;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint> CompressCCtxFn;
    private static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> DecompressDCtxFn;
    private static readonly delegate* unmanaged<nuint, uint> IsErrorFn;
    private static readonly delegate* unmanaged<int> MaxCLevelFn;
    private static readonly delegate* unmanaged<uint> VersionNumberFn;

    static LibZstd()
    {
        if (!NativeLibrary.TryLoad(LibraryName, typeof(LibZstd).Assembly, null, out nint lib))
        {
            return;
        }

        if (NativeLibrary.TryGetExport(lib, "ZSTD_createCCtx", out nint cc)
            && NativeLibrary.TryGetExport(lib, "ZSTD_createDCtx", out nint dc)
            && NativeLibrary.TryGetExport(lib, "ZSTD_compressCCtx", out nint c)
            && NativeLibrary.TryGetExport(lib, "ZSTD_decompressDCtx", out nint d)
            && NativeLibrary.TryGetExport(lib, "ZSTD_isError", out nint e)
            && NativeLibrary.TryGetExport(lib, "ZSTD_maxCLevel", out nint m)
            && NativeLibrary.TryGetExport(lib, "ZSTD_versionNumber", out nint v))
        {
            CreateCCtxFn = (delegate* unmanaged<nint>)cc;
            CreateDCtxFn = (delegate* unmanaged<nint>)dc;
            CompressCCtxFn = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, int, nuint>)c;
            DecompressDCtxFn = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)d;
            IsErrorFn = (delegate* unmanaged<nuint, uint>)e;
            MaxCLevelFn = (delegate* unmanaged<int>)m;
            VersionNumberFn = (delegate* unmanaged<uint>)v;
            Available = true;
        }
    }

    /// <summary>Whether libzstd.so.1 was found with the functions used here.</summary>
    public static bool Available { get; }

    /// <summary>The highest compression level the library accepts (19 at least, 22 in 1.5).</summary>
    public static int MaxLevel => Available ? MaxCLevelFn() : 19;

    /// <summary>The library's version as "1.5.4", or null when it is not available.</summary>
    public static string? Version
    {
        get
        {
            if (!Available)
            {
                return null;
            }

            uint v = VersionNumberFn();
            return $"{v / 10000}.{v / 100 % 100}.{v % 100}";
        }
    }

    /// <summary>
    /// Decompresses zstd frames that must fill <paramref name="destination"/> exactly and end exactly at the end of
    /// <paramref name="source"/>; false for anything else (damaged frame, wrong length, trailing bytes).
    /// </summary>
    /// <exception cref="InvalidDataException">libzstd is not available.</exception>
    public static bool TryDecompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        EnsureAvailable();
        nint d = t_dctx;
        if (d == 0)
        {
            d = t_dctx = CreateDCtxFn();
            if (d == 0)
            {
                throw new OutOfMemoryException("libzstd could not allocate a decompression context");
            }
        }

        nuint result;
        fixed (byte* i = source)
        fixed (byte* o = destination)
        {
            result = DecompressDCtxFn(d, o, (nuint)destination.Length, i, (nuint)source.Length); // (dctx, dst, dstCapacity, src, srcSize)
        }

        return IsErrorFn(result) == 0 && result == (nuint)destination.Length;
    }

    /// <summary>Compresses into <paramref name="destination"/> at <paramref name="level"/>; 0 when the result does not fit.</summary>
    /// <exception cref="InvalidDataException">libzstd is not available.</exception>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        EnsureAvailable();
        nint c = t_cctx;
        if (c == 0)
        {
            c = t_cctx = CreateCCtxFn();
            if (c == 0)
            {
                throw new OutOfMemoryException("libzstd could not allocate a compression context");
            }
        }

        nuint result;
        fixed (byte* i = source)
        fixed (byte* o = destination)
        {
            result = CompressCCtxFn(c, o, (nuint)destination.Length, i, (nuint)source.Length, level); // (cctx, dst, dstCapacity, src, srcSize, level)
        }

        return IsErrorFn(result) != 0 ? 0 : (int)result;
    }

    private static void EnsureAvailable()
    {
        if (!Available)
        {
            throw new InvalidDataException($"zstd needs {LibraryName}, which could not be loaded: install the package libzstd1");
        }
    }
}
