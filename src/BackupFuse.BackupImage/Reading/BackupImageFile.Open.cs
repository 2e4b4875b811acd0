using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.BackupImage.Reading;

// Opening an image: header, trailer and index directory, validated in that order (design notes in BackupImageFile.cs).
public sealed partial class BackupImageFile
{
    /// <summary>
    /// Opens and validates an image. <paramref name="passphrase"/> is needed only for encrypted images.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a valid image (names the file and the problem).</exception>
    /// <exception cref="PassphraseException">The image is encrypted and the passphrase is missing or wrong.</exception>
    /// <exception cref="IOException">The file is missing or not a regular file (a FIFO, a device, a directory).</exception>
    public static BackupImageFile Open(string path, PassphraseSource? passphrase = null, int pageCacheCapacity = DefaultPageCacheCapacity)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCacheCapacity, 1);
        var image = LocalImageObject.Open(path);
        try
        {
            return Open(image, passphrase, pageCacheCapacity);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens and validates the image in <paramref name="image"/>, which the result owns from then on (and the caller
    /// still, if this throws).
    /// </summary>
    /// <exception cref="InvalidDataException">The object is not a valid image (names it and the problem).</exception>
    /// <exception cref="PassphraseException">The image is encrypted and the passphrase is missing or wrong.</exception>
    /// <exception cref="IOException">The object cannot be read.</exception>
    public static BackupImageFile Open(IImageObject image, PassphraseSource? passphrase = null, int pageCacheCapacity = DefaultPageCacheCapacity)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageCacheCapacity, 1);
        string path = image.Location;
        long length = image.Length;
        var header = ReadHeader(image);
        if (length < ImageHeader.Size + ImageTrailer.Size)
        {
            throw new InvalidDataException($"{path}: no valid trailer at the end of the file: the image is truncated or was not completely written");
        }

        Span<byte> tb = stackalloc byte[ImageTrailer.Size];
        image.ReadExactly(length - ImageTrailer.Size, tb);
        var trailer = ImageTrailer.Parse(tb, header, length, path);
        var directory = ReadDirectory(image, header, trailer, path);
        // Index pages are interleaved with the payloads (docs/format.md): one hint per page, so that a remote object
        // fetches the pages ahead, not the whole span from the first page to the directory (nearly the whole image).
        foreach (var d in directory)
        {
            image.Prefetch(d.Offset, d.StoredLength);
        }

        var keys = header.Encryption == EncryptionMethod.None ? null : ImageKeys.Open(header, passphrase, path);
        long read = ImageHeader.Size + ImageTrailer.Size + ((long)trailer.DirectoryCount * IndexDirectoryEntry.Size);
        return new BackupImageFile(image, length, header, trailer, directory, keys, pageCacheCapacity, read);
    }

    /// <summary>Reads and validates only the header of <paramref name="path"/> (what a catalog scan needs).</summary>
    /// <exception cref="IOException">The file is missing or not a regular file.</exception>
    public static ImageHeader ReadHeader(string path)
    {
        using var image = LocalImageObject.Open(path);
        return ReadHeader(image);
    }

    /// <summary>Reads and validates the header of an open image object.</summary>
    /// <exception cref="InvalidDataException">Not a valid image header.</exception>
    /// <exception cref="IOException">The object cannot be read.</exception>
    public static ImageHeader ReadHeader(IImageObject image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Length < ImageHeader.Size)
        {
            throw new InvalidDataException($"{image.Location}: not a backup image (file is shorter than the {ImageHeader.Size}-byte header)");
        }

        Span<byte> hb = stackalloc byte[ImageHeader.Size];
        image.ReadExactly(0, hb);
        return ImageHeader.Parse(hb, image.Location);
    }

    private static IndexDirectoryEntry[] ReadDirectory(IImageObject image, ImageHeader header, ImageTrailer trailer, string path)
    {
        int count = trailer.DirectoryCount;
        var bytes = new byte[(long)count * IndexDirectoryEntry.Size];
        image.ReadExactly(trailer.DirectoryOffset, bytes);
        uint crc = Crc32C.Compute(bytes);
        if (crc != trailer.DirectoryCrc)
        {
            throw new InvalidDataException($"{path}: index directory checksum mismatch (stored 0x{trailer.DirectoryCrc:X8}, computed 0x{crc:X8}): the index is corrupt");
        }

        long maxPages = (header.ChunkCount + header.EntriesPerPage - 1) / header.EntriesPerPage;
        int pageLength = StoredPageLength(header);
        var entries = new IndexDirectoryEntry[count];
        for (int i = 0; i < count; i++)
        {
            var e = IndexDirectoryEntry.Read(bytes.AsSpan(i * IndexDirectoryEntry.Size));
            string? problem =
                e.PageNumber >= maxPages ? $"page number {e.PageNumber} is beyond the disk" :
                i > 0 && e.PageNumber <= entries[i - 1].PageNumber ? "page numbers are not strictly ascending" :
                e.StoredLength != pageLength ? $"stored page length {e.StoredLength} is not {pageLength}" :
                e.Offset < ImageHeader.Size || e.Offset > trailer.DirectoryOffset - e.StoredLength ? $"page offset {e.Offset} is outside the data area" :
                null;
            if (problem != null)
            {
                throw new InvalidDataException($"{path}: invalid index directory entry {i}: {problem}");
            }

            entries[i] = e;
        }

        return entries;
    }

    /// <summary>Bytes of one stored index page for this header.</summary>
    internal static int StoredPageLength(ImageHeader header) =>
        (header.EntriesPerPage * ChunkEntry.Size) + (header.Encryption == EncryptionMethod.None ? 0 : ImageKeys.TagSize);
}
