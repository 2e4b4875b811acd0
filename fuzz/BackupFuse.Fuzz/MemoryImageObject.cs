using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Fuzz;

/// <summary>An image object over a byte array: what BackupImageFile.Open reads a fuzz input through (no refetch, no cache).</summary>
public sealed class MemoryImageObject(byte[] bytes, string location = "fuzz.bfi") : IImageObject
{
    /// <inheritdoc/>
    public string Location => location;

    /// <inheritdoc/>
    public long Length => bytes.LongLength;

    /// <inheritdoc/>
    public ImageFileStatus? LocalStatus => null;

    /// <inheritdoc/>
    public bool SmallReadsAreCheap => true; // in memory: the targets read parts of chunks as the daemon does locally

    /// <inheritdoc/>
    public void ReadExactly(long offset, Span<byte> destination)
    {
        // As LocalImageObject: a negative offset is the caller's bug (RandomAccess throws), a range past the end is a
        // truncated image.
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset > bytes.LongLength - destination.Length)
        {
            throw new InvalidDataException($"{location}: the object ends before the range {offset}+{destination.Length}");
        }

        bytes.AsSpan((int)offset, destination.Length).CopyTo(destination);
    }

    /// <inheritdoc/>
    public bool Refetch(long offset, long length) => false;

    /// <inheritdoc/>
    public void Prefetch(long offset, long length)
    {
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
