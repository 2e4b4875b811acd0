using System.Buffers;
using BackupFuse.Core;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// Copies a whole block source to a file or a stream. To a file, Zero/Unallocated extents become holes (the file
/// is sized first and only data is written); to a stream (a pipe), zeros are written out.
/// </summary>
public static class SparseCopy
{
    private const int BufferSize = 4 << 20;

    /// <summary>Copies <paramref name="source"/> to <paramref name="path"/> ("-" = standard output), reporting progress.</summary>
    public static void Copy(IBlockSource source, string path, ProgressBar? bar, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (path == "-")
        {
            // Reports EPIPE and short writes, unlike Console.OpenStandardOutput; not disposed on failure (the flush
            // in Dispose would hide the first error).
            var stdout = BackupFuse.BackupImage.Writing.StandardOutputStream.OpenBuffered();
            CopyTo(source, (data, _) => stdout.Write(data), sparse: false, bar, token);
            stdout.Dispose();
            return;
        }

        NewOutputFile.Write(path, FileAccess.Write, handle =>
        {
            RandomAccess.SetLength(handle, source.Length);
            CopyTo(source, (data, offset) => RandomAccess.Write(handle, data, offset), sparse: true, bar, token);
        });
    }

    private static void CopyTo(IBlockSource source, Action<ReadOnlySpan<byte>, long> write, bool sparse, ProgressBar? bar, CancellationToken token)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long pos = 0;
            while (pos < source.Length)
            {
                token.ThrowIfCancellationRequested();
                var extent = source.GetExtent(pos, Math.Min(BufferSize, source.Length - pos));
                var span = buffer.AsSpan(0, (int)extent.Length);
                if (extent.Kind == ExtentKind.Data)
                {
                    source.Read(pos, span);
                    write(span, pos);
                }
                else if (!sparse)
                {
                    span.Clear();
                    write(span, pos);
                }

                pos = extent.End;
                bar?.Report(pos, source.Length);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
