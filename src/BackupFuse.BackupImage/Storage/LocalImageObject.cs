using BackupFuse.BackupImage.Reading;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Storage;

/// <summary>
/// An image in a local file, opened through <see cref="UnixFile.OpenRegular"/> (regular files only, never blocking on
/// a FIFO); positional reads on one descriptor, so it is thread-safe. Nothing is cached here: the kernel's page cache
/// does that.
/// </summary>
public sealed class LocalImageObject : IImageObject
{
    private readonly SafeFileHandle _handle;

    private LocalImageObject(string path, SafeFileHandle handle, ImageFileStatus status)
    {
        Location = path;
        _handle = handle;
        LocalStatus = status;
        Length = RandomAccess.GetLength(handle);
    }

    /// <inheritdoc/>
    public string Location { get; }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public ImageFileStatus? LocalStatus { get; }

    /// <summary>Opens the regular file at <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission denied.</exception>
    /// <exception cref="IOException">Not a regular file, or another error.</exception>
    public static LocalImageObject Open(string path)
    {
        var handle = UnixFile.OpenRegular(path, out var status);
        try
        {
            return new LocalImageObject(path, handle, status);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void ReadExactly(long offset, Span<byte> destination)
    {
        long at = offset;
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, destination, at);
            if (n <= 0)
            {
                throw new InvalidDataException($"{Location}: unexpected end of file at offset {at}: the image is truncated");
            }

            destination = destination[n..];
            at += n;
        }
    }

    /// <inheritdoc/>
    public bool Refetch(long offset, long length) => false;

    /// <inheritdoc/>
    public void Prefetch(long offset, long length)
    {
    }

    /// <inheritdoc/>
    public void Dispose() => _handle.Dispose();
}
