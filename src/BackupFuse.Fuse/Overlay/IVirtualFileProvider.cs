using BackupFuse.Core;

namespace BackupFuse.Fuse.Overlay;

/// <summary>
/// Decides which regular files of the served directory are virtual (their size and bytes come from an
/// <see cref="IBlockSource"/>, not from the file) and opens them. Called concurrently from FUSE worker threads.
/// </summary>
/// <remarks>
/// The directory may be covered by the mount itself: read the underlying files ONLY through
/// <paramref name="directory"/>-relative methods of <see cref="UnderlyingDirectory"/>, never by path (that
/// would re-enter the mount). An exception fails only the request at hand (mapped by <see cref="Errno"/>:
/// InvalidDataException/IOException → EIO, UnauthorizedAccessException → EACCES, ...).
/// </remarks>
public interface IVirtualFileProvider
{
    /// <summary>
    /// Called on every getattr/open of a regular file. Return null for a plain pass-through file. Must be cheap
    /// on repeated calls: cache by (Device, Inode, Size, Modified) of <paramref name="stat"/>.
    /// </summary>
    VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat);

    /// <summary>
    /// Opens a file <see cref="Probe"/> called virtual. The returned source is owned (disposed at release) by the
    /// open file; return a non-owning wrapper to share one source between opens. <paramref name="write"/> is true
    /// for O_WRONLY/O_RDWR opens; a source with CanWrite false then fails the open with EROFS.
    /// </summary>
    IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write);
}

/// <summary>Helpers for providers.</summary>
public static class VirtualFiles
{
    /// <summary>Bytes of <paramref name="source"/> reported as Data by GetExtent (Zero and Unallocated are holes).</summary>
    public static long CountAllocatedBytes(IBlockSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        long total = 0;
        long pos = 0;
        long length = source.Length;
        while (pos < length)
        {
            var e = source.GetExtent(pos, length - pos);
            if (e.Length <= 0)
            {
                throw new InvalidDataException($"{source.GetType().Name}.GetExtent returned an empty extent at {pos}");
            }

            if (e.Kind == ExtentKind.Data)
            {
                total += e.Length;
            }

            pos += e.Length;
        }

        return total;
    }
}
