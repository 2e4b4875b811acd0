using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Open follows parent ids from the given image down to a full backup, finding each parent BY IDENTITY through the
//   catalog (never by a stored path). Checks at each step, in this order: parent found (else FileNotFoundException
//   naming the id and the directories searched), no cycle (an id seen twice), the file found really has that id
//   (the catalog may be stale), same disk size (a file-level child: not smaller, it extends its parent's stream; block
//   and file-level images never mix), same chunk size, then (format 1.1) the child's parent binding against
//   the parent's header and trailer: a file that only carries the expected id, not the content the child was made
//   from, is refused. An older child without a binding is accepted on its parent's id alone (ImageInfo.ParentBound).
// - An id may have several files (ImageCatalog.FindAll: a synthetic full beside the incremental it reproduces); the
//   preferred one that passes those checks serves. There is no backtracking further down the chain.
// - Without a catalog, the image's own directory is searched. Every image (the one named and each parent) is opened
//   through the catalog's repository that holds it, so a chain may mix local and remote images.
// - The chain owns the opened files. CreateSource returns a ChainSource over BackupImageSources that do not own the
//   files, so several sources (e.g. one per open VHDX handle) may share one chain; dispose the chain last.
// - Thread-safe after Open.

/// <summary>One image and its ancestors, opened and checked, newest first.</summary>
public sealed class BackupChain : IDisposable
{
    /// <summary>Longest chain accepted (a guard against hostile or broken catalogs).</summary>
    public const int MaxDepth = 4096;

    private readonly BackupImageFile[] _layers;

    private BackupChain(BackupImageFile[] layers, ImageCatalog catalog)
    {
        _layers = layers;
        Catalog = catalog;
    }

    /// <summary>The images, newest (the one opened) first, full backup last.</summary>
    public IReadOnlyList<BackupImageFile> Layers => _layers;

    /// <summary>The image the chain was opened for.</summary>
    public BackupImageFile Top => _layers[0];

    /// <summary>The catalog used to resolve parents.</summary>
    public ImageCatalog Catalog { get; }

    /// <summary>Size of the disk.</summary>
    public long DiskSize => Top.DiskSize;

    /// <summary>Chunk size shared by every image of the chain.</summary>
    public int ChunkSize => Top.ChunkSize;

    /// <summary>
    /// Opens <paramref name="imagePath"/> and its ancestors. <paramref name="passphrase"/> is used for every encrypted
    /// image of the chain.
    /// </summary>
    /// <exception cref="FileNotFoundException">A parent is not in any search directory.</exception>
    /// <exception cref="InvalidDataException">An image is corrupt, or the chain is inconsistent (identity, cycle, size).</exception>
    /// <exception cref="PassphraseException">An image is encrypted and the passphrase is missing or wrong.</exception>
    public static BackupChain Open(string imagePath, ImageCatalog? catalog = null, PassphraseSource? passphrase = null, int pageCacheCapacity = BackupImageFile.DefaultPageCacheCapacity)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagePath);
        catalog ??= new ImageCatalog([System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(imagePath))!]);
        var layers = new List<BackupImageFile>();
        try
        {
            var current = OpenLayer(catalog, imagePath, passphrase, pageCacheCapacity);
            layers.Add(current);
            var seen = new List<Guid> { current.Id };
            while (!current.IsFull)
            {
                Guid parentId = current.ParentId;
                if (seen.Contains(parentId))
                {
                    throw new InvalidDataException($"cycle in the backup chain of {imagePath}: {string.Join(" -> ", seen.Append(parentId))}");
                }

                if (layers.Count >= MaxDepth)
                {
                    throw new InvalidDataException($"backup chain of {imagePath} is longer than {MaxDepth} images");
                }

                var candidates = catalog.FindAll(parentId);
                if (candidates.Count == 0)
                {
                    throw new FileNotFoundException($"parent image {parentId} of {current.Path} was not found in the search directories: {string.Join(", ", catalog.SearchDirectories)}");
                }

                // Several files may hold the parent's state (a synthetic full next to the incremental it reproduces):
                // the preferred one serves, and when it does not fit, the next; the first error stands if none does.
                BackupImageFile? parent = null;
                Exception? firstError = null;
                foreach (var found in candidates)
                {
                    BackupImageFile? candidate = null;
                    try
                    {
                        candidate = OpenLayer(catalog, found.Path, passphrase, pageCacheCapacity);
                        CheckParent(current, candidate, parentId);
                        parent = candidate;
                        break;
                    }
                    catch (Exception e) when (e is InvalidDataException or IOException or PassphraseException)
                    {
                        candidate?.Dispose();
                        firstError ??= e;
                    }
                }

                if (parent == null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(firstError!);
                }

                layers.Add(parent);
                seen.Add(parentId);
                current = parent;
            }

            return new BackupChain([.. layers], catalog);
        }
        catch
        {
            foreach (var layer in layers)
            {
                layer.Dispose();
            }

            throw;
        }
    }

    private static void CheckParent(BackupImageFile current, BackupImageFile parent, Guid parentId)
    {
        if (parent.Id != parentId)
        {
            throw new InvalidDataException($"{parent.Path} was expected to be image {parentId} (the parent of {current.Path}) but is image {parent.Id}");
        }

        bool files = Files.FileImageFields.IsFileImage(current.Header);
        if (files != Files.FileImageFields.IsFileImage(parent.Header))
        {
            throw new InvalidDataException($"{current.Path} is a {(files ? "file-level" : "block")} image but its parent {parent.Path} is a {(files ? "block" : "file-level")} image: they cannot form a chain");
        }

        // A file-level child appends to its parent's data stream (docs/format.md section 12.3): longer, never shorter.
        if (files ? parent.DiskSize > current.DiskSize : parent.DiskSize != current.DiskSize)
        {
            throw new InvalidDataException($"{current.Path} has disk size {current.DiskSize} but its parent {parent.Path} has {parent.DiskSize}");
        }

        if (parent.ChunkSize != current.ChunkSize)
        {
            throw new InvalidDataException($"{current.Path} has chunk size {current.ChunkSize} but its parent {parent.Path} has {parent.ChunkSize}");
        }

        if (current.Header.IsParentBound && !ParentBinding.Matches(current.Header, parent.Header, parent.Trailer))
        {
            throw new InvalidDataException($"{current.Path}'s parent {parent.Path} is not the image {current.Path} was made from (content differs)");
        }
    }

    private static BackupImageFile OpenLayer(ImageCatalog catalog, string address, PassphraseSource? passphrase, int pageCacheCapacity)
    {
        var image = catalog.OpenObject(address);
        try
        {
            return BackupImageFile.Open(image, passphrase, pageCacheCapacity);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>A block source reading the chain as one disk (the sources do not own the files: keep the chain open).</summary>
    /// <remarks>The older, shorter layers of a file-level chain are lengthened with unallocated space to the top's length.</remarks>
    public ChainSource CreateSource() => new([.. _layers.Select(l => l.DiskSize == DiskSize
        ? (IBlockSource)new BackupImageSource(l)
        : new Files.ExtendedLayerSource(new BackupImageSource(l), DiskSize))]);

    /// <summary>What `info` shows for each image, newest first.</summary>
    public IReadOnlyList<ImageInfo> Describe() => [.. _layers.Select(l => l.GetInfo())];

    /// <summary>
    /// The chunk as the chain reads it: whether it is all zeros and, when not, the SHA-256 of its plaintext, from the
    /// newest layer that holds it. Reads only index pages.
    /// </summary>
    public (bool IsZero, ChunkHash Hash) EffectiveChunk(long chunkIndex)
    {
        foreach (var layer in _layers)
        {
            if (chunkIndex >= layer.ChunkCount)
            {
                continue; // an older layer of a file-level chain ends before this chunk: it holds nothing here
            }

            var e = layer.GetEntry(chunkIndex);
            if (e.Kind == ChunkKind.Data)
            {
                return (false, e.Hash);
            }

            if (e.Kind == ChunkKind.Zero)
            {
                return (true, default);
            }
        }

        return (true, default);
    }

    /// <summary>First chunk at or after <paramref name="chunkIndex"/> that any layer has an index page for, or ChunkCount.</summary>
    public long NextChunkInAnyPage(long chunkIndex) => _layers.Min(l =>
        chunkIndex < l.ChunkCount && l.NextChunkInAnyPage(chunkIndex) is var next && next < l.ChunkCount ? next : Top.ChunkCount);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var layer in _layers)
        {
            layer.Dispose();
        }
    }
}
