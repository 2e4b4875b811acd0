using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - One point of a file-level backup as an IFileTree: the top image's header says where its catalog is; the catalog
//   (parsed once, hostile-input safe, FileCatalog) gives the tree; file content is read from the chain's data stream,
//   where older images answer for the content they stored (the child leaves those chunks unallocated).
// - Every range is checked before it is read: the catalog's data ranges were checked against the stream at parse time,
//   and ReadFile checks the caller's range against the file's size. The header's catalog place is checked against the
//   stream before anything is read. A damaged chunk surfaces as the chain's InvalidDataException: never wrong bytes.
// - Owns the block source it reads (not the chain: the caller keeps the chain open while the tree is used and disposes
//   it after). Thread-safe: the catalog is immutable and the chain source is thread-safe.

/// <summary>The tree of files stored at one point of a file-level backup chain.</summary>
public sealed class FileImageTree : IFileTree
{
    private readonly IBlockSource _stream;
    private readonly bool _ownsStream;

    private FileImageTree(IBlockSource stream, bool ownsStream, FileCatalog catalog, FileImageFields fields)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        Catalog = catalog;
        Fields = fields;
    }

    /// <summary>The parsed catalog (for lookups by path and content hashes).</summary>
    public FileCatalog Catalog { get; }

    /// <summary>The header fields of the image the tree comes from.</summary>
    public FileImageFields Fields { get; }

    /// <inheritdoc/>
    public int Count => Catalog.Count;

    /// <summary>
    /// Opens the tree of the top image of <paramref name="chain"/> (keep the chain open while the tree is used);
    /// <paramref name="keepHashes"/>: keep the content hashes (FileCatalog.HasHashes) for an incremental's backup.
    /// </summary>
    /// <exception cref="InvalidDataException">The image is not a file-level image, or its catalog or a chunk is damaged.</exception>
    public static FileImageTree Open(BackupChain chain, bool keepHashes = true)
    {
        ArgumentNullException.ThrowIfNull(chain);
        var source = chain.CreateSource();
        try
        {
            return Open(source, chain.Top.Header, chain.Top.Path, ownsSource: true, keepHashes);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the tree of an older point of <paramref name="chain"/>: the image <paramref name="layer"/> (0 = the top)
    /// read with the images below it (keep the chain open while the tree is used).
    /// </summary>
    /// <exception cref="InvalidDataException">The image is not a file-level image, or its catalog or a chunk is damaged.</exception>
    public static FileImageTree Open(BackupChain chain, int layer)
    {
        ArgumentNullException.ThrowIfNull(chain);
        if (layer == 0)
        {
            return Open(chain);
        }

        var layers = chain.Layers.Skip(layer).ToList();
        long length = layers[0].DiskSize;
        var source = new ChainSource([.. layers.Select(l => l.DiskSize == length
            ? (IBlockSource)new BackupImageSource(l)
            : new ExtendedLayerSource(new BackupImageSource(l), length))]);
        try
        {
            return Open(source, layers[0].Header, layers[0].Path, ownsSource: true);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the tree stored in <paramref name="stream"/> (the chain's data stream) as described by the top image's
    /// <paramref name="header"/>; <paramref name="name"/> is used in messages.
    /// </summary>
    /// <exception cref="InvalidDataException">The header is not that of a file-level image, or the catalog is damaged.</exception>
    public static FileImageTree Open(IBlockSource stream, ImageHeader header, string name, bool ownsSource = false, bool keepHashes = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(header);
        var fields = FileImageFields.Read(header) ?? throw new InvalidDataException($"{name}: not a file-level backup (a disk image: mount it as a disk)");
        long length = stream.Length;
        // The catalog ends the stream, which is padded with zeros to a whole chunk.
        if (fields.CatalogOffset < 0 || fields.CatalogLength <= 0 || fields.CatalogOffset > length || fields.CatalogLength > length - fields.CatalogOffset ||
            length - fields.CatalogOffset - fields.CatalogLength >= header.ChunkSize)
        {
            throw new InvalidDataException($"{name}: damaged file-level header: catalog {fields.CatalogOffset}+{fields.CatalogLength} does not end the {length}-byte data stream");
        }

        var catalog = FileCatalog.Parse((offset, buffer) => stream.Read(fields.CatalogOffset + offset, buffer), fields.CatalogLength, fields.CatalogOffset, name, keepHashes);
        return new FileImageTree(stream, ownsSource, catalog, fields);
    }

    /// <inheritdoc/>
    public FileTreeEntry GetEntry(int index) => Catalog.GetEntry(index);

    /// <inheritdoc/>
    public FileTreeEntryKind KindOf(int index) => Catalog.KindOf(index);

    /// <inheritdoc/>
    public long SizeOf(int index) => Catalog.SizeOf(index);

    /// <inheritdoc/>
    public string NameOf(int index) => Catalog.NameOf(index);

    /// <inheritdoc/>
    public void ReadFile(int index, long offset, Span<byte> buffer)
    {
        long size = Catalog.KindOf(index) == FileTreeEntryKind.File ? Catalog.SizeOf(index) : -1;
        if (size < 0 || offset < 0 || offset > size - buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"{offset}+{buffer.Length} is outside entry {index} ({Catalog.KindOf(index)}, {Math.Max(size, 0)} bytes)");
        }

        if (buffer.Length > 0)
        {
            _stream.Read(Catalog.DataOffsetOf(index) + offset, buffer);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsStream)
        {
            _stream.Dispose();
        }
    }
}
