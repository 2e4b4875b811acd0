using System.Buffers;
using BackupFuse.Core;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Vhdx.Tests;

/// <summary>
/// Writes any block source (a SynthesizedVhdx, a raw disk) to a real sparse file: the file is sized to the source,
/// then only Data extents are read and written, so Zero extents stay holes. Returns the number of data bytes written.
/// </summary>
public static class SynthesizedVhdxExport
{
    private const int ChunkSize = 1024 * 1024;

    /// <summary>Exports <paramref name="source"/> to <paramref name="path"/> (created or truncated).</summary>
    public static long ToSparseFile(IBlockSource source, string path)
    {
        ArgumentNullException.ThrowIfNull(source);
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite);
        RandomAccess.SetLength(handle, source.Length);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        long written = 0;
        try
        {
            long pos = 0;
            while (pos < source.Length)
            {
                var e = source.GetExtent(pos, source.Length - pos);
                if (e.Offset != pos || e.Length <= 0)
                {
                    throw new InvalidOperationException($"GetExtent({pos}) returned {e}");
                }

                if (e.Kind == ExtentKind.Data)
                {
                    for (long at = e.Offset; at < e.End; at += ChunkSize)
                    {
                        var span = buffer.AsSpan(0, (int)Math.Min(ChunkSize, e.End - at));
                        source.Read(at, span);
                        RandomAccess.Write(handle, span, at);
                        written += span.Length;
                    }
                }

                pos = e.End;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return written;
    }
}
