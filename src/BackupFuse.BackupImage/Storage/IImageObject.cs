using BackupFuse.BackupImage.Reading;

namespace BackupFuse.BackupImage.Storage;

// Design notes:
// - What an image is read from: an immutable byte object addressed by offset. A local file (LocalImageObject), an S3
//   object or an HTTP resource (BackupFuse.Remote), possibly behind a persistent cache. BackupImageFile needs nothing
//   else: header at 0, trailer at the end, index pages and chunks by offset.
// - Images never change once written, so any copy of a range (a cache entry) stays valid for as long as the object
//   has the same identity; the only thing that can make a copy wrong is damage. Readers verify every range they use
//   (CRC-32C, GCM tags) and, when a check fails, call Refetch: a caching object drops its copy and the reader reads
//   the range once more; a plain object answers false and the failure stands.
// - Location names the object for messages and plugin files and never holds a secret (no credentials, no signed
//   query strings).
// - Implementations are thread-safe: reads of different ranges may run in parallel.

/// <summary>A read-only, immutable image file addressed by offset (local file, object store, web server).</summary>
public interface IImageObject : IDisposable
{
    /// <summary>Where the object is (a path or URL without secrets), for messages and plugin files.</summary>
    string Location { get; }

    /// <summary>Size of the object in bytes.</summary>
    long Length { get; }

    /// <summary>The local file actually opened (real path, owner, mode), or null for a remote object.</summary>
    ImageFileStatus? LocalStatus { get; }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/>.</summary>
    /// <exception cref="InvalidDataException">The object ends before the range does (a truncated image).</exception>
    /// <exception cref="IOException">The bytes cannot be read (I/O error, store unreachable after retries).</exception>
    void ReadExactly(long offset, Span<byte> destination);

    /// <summary>
    /// A range read before failed its checksum: drops any cached copy of it. True when reading the range again may
    /// give other bytes (the copy came from a cache), false when the failure is final.
    /// </summary>
    bool Refetch(long offset, long length);

    /// <summary>
    /// Whether a small read costs about its size (a local file, memory), so that a reader may read a few sectors of a
    /// chunk instead of the whole chunk. False for remote objects, where every read is a request (or a cache lookup).
    /// </summary>
    bool SmallReadsAreCheap => LocalStatus != null;

    /// <summary>A hint that the range will be read soon (index pages at open); may do nothing.</summary>
    void Prefetch(long offset, long length);
}
