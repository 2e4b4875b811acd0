using System.Buffers;
using System.Runtime.CompilerServices;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Open (BackupImageFile.Open.cs) reads the header (512 B), the trailer (128 B) and the index directory (24 B per NON-EMPTY index page), and
//   nothing else: a 1 TiB sparse image opens by reading well under a kilobyte. Index pages are read on demand and
//   kept in a small bounded LRU (IndexPageCache). IndexBytesRead counts every metadata byte read, for tests.
// - Validation order on open: file length, header (magic, major version, CRC, fields), trailer (magic, CRC, id, its
//   position), directory (CRC, order, ranges), then the key check for encrypted images. Pages are validated when
//   loaded (CRC, GCM tag, every entry's kind/flags/range), chunks on every read (CRC, GCM tag, exact decompressed
//   length). Any failure is an InvalidDataException naming the file and, for chunks, the chunk index and disk offset.
// - Raw (uncompressed, unencrypted) chunks are read straight into the caller's buffer and verified there; the CRC
//   CRC is Core's Crc32C (three interleaved streams on chunk-sized inputs).
// - Thread-safe: positional reads on one IImageObject, a locked page cache, pooled AesGcm instances; no state
//   changes after Open apart from the cache and counters.
// - The bytes come from an IImageObject: a local file (LocalImageObject, opened through UnixFile.OpenRegular: never
//   blocking on a FIFO, regular files only, Status describes the file actually opened for the daemon's access rules)
//   or a remote object (Status null). When a range fails its check (CRC, GCM tag, decompression) and the object says
//   its copy may be refetched (a cache entry), the range is read once more; a second failure stands. So a damaged
//   cache entry is never served.
// - Nothing here can write to an image.

/// <summary>An open .bfi image: header, trailer, lazily loaded index, and verified chunk reads.</summary>
public sealed partial class BackupImageFile : IDisposable
{
    /// <summary>
    /// Default number of index pages kept in memory per image: 1024 x 56 KiB = 56 MiB at most at 1024 entries/page,
    /// the index of 64 GiB of disk at 64 KiB chunks, drawn from the mount's cache budget like the block cache. (It was
    /// 64 pages, 4 GiB of disk: random reads over 8 GiB then reloaded and parsed a 56 KiB page every other read.)
    /// </summary>
    public const int DefaultPageCacheCapacity = 1024;

    private readonly IImageObject _object;
    private readonly uint[] _pageNumbers;
    private readonly IndexDirectoryEntry[] _directory;
    private readonly IndexPageCache _pages;
    private readonly Func<uint, ChunkEntry[]> _loadPage; // made once: a method group would allocate a delegate per lookup
    private readonly ImageKeys? _keys;
    private long _indexBytesRead;

    private BackupImageFile(IImageObject image, long fileLength, ImageHeader header, ImageTrailer trailer, IndexDirectoryEntry[] directory, ImageKeys? keys, int cacheCapacity, long bytesRead)
    {
        _object = image;
        FileLength = fileLength;
        Header = header;
        Trailer = trailer;
        _directory = directory;
        _pageNumbers = Array.ConvertAll(directory, d => d.PageNumber);
        _keys = keys;
        _pages = new IndexPageCache(cacheCapacity);
        _loadPage = LoadPage;
        _indexBytesRead = bytesRead;
    }

    /// <summary>The image's address (a path, or a URL for a remote image).</summary>
    public string Path => _object.Location;

    /// <summary>The local file actually opened (real path, identity, owner, mode), from its descriptor; null for a remote image.</summary>
    public ImageFileStatus? Status => _object.LocalStatus;

    /// <summary>Whether the image is a remote object (no local owner or mode).</summary>
    public bool IsRemote => _object.LocalStatus == null;

    /// <summary>The parsed header.</summary>
    public ImageHeader Header { get; }

    /// <summary>The parsed trailer.</summary>
    public ImageTrailer Trailer { get; }

    /// <summary>Size of the image file.</summary>
    public long FileLength { get; }

    /// <summary>Identity of the image.</summary>
    public Guid Id => Header.ImageId;

    /// <summary>Identity of the parent, <see cref="Guid.Empty"/> for a full backup.</summary>
    public Guid ParentId => Header.ParentId;

    /// <summary>Whether this is a full backup.</summary>
    public bool IsFull => Header.IsFull;

    /// <summary>Size of the disk.</summary>
    public long DiskSize => Header.DiskSize;

    /// <summary>Chunk size.</summary>
    public int ChunkSize => Header.ChunkSize;

    /// <summary>Number of chunks of the disk.</summary>
    public long ChunkCount => Header.ChunkCount;

    /// <summary>Whether the image is encrypted.</summary>
    public bool IsEncrypted => Header.Encryption != EncryptionMethod.None;

    /// <summary>Metadata bytes read so far (header, trailer, directory and index pages), to prove the index is lazy.</summary>
    public long IndexBytesRead => Interlocked.Read(ref _indexBytesRead);

    /// <summary>Number of non-empty index pages.</summary>
    public int IndexPageCount => _directory.Length;

    /// <summary>The index directory (one entry per non-empty page), for tools and tests.</summary>
    public IReadOnlyList<IndexDirectoryEntry> IndexDirectory => _directory;

    /// <summary>Plaintext length of chunk <paramref name="chunkIndex"/> (the last chunk may be short).</summary>
    public int ChunkLength(long chunkIndex) => (int)Math.Min(ChunkSize, DiskSize - (chunkIndex * ChunkSize));

    /// <summary>Whether the index page holding <paramref name="chunkIndex"/> exists (false: all its chunks are absent).</summary>
    public bool HasPageFor(long chunkIndex) => Array.BinarySearch(_pageNumbers, (uint)(chunkIndex / Header.EntriesPerPage)) >= 0;

    /// <summary>First chunk at or after <paramref name="chunkIndex"/> that lies in a non-empty page, or ChunkCount.</summary>
    public long NextChunkInAnyPage(long chunkIndex)
    {
        long page = chunkIndex / Header.EntriesPerPage;
        int i = Array.BinarySearch(_pageNumbers, (uint)Math.Min(page, uint.MaxValue));
        if (i >= 0)
        {
            return chunkIndex;
        }

        i = ~i;
        return i < _pageNumbers.Length ? Math.Min(ChunkCount, (long)_pageNumbers[i] * Header.EntriesPerPage) : ChunkCount;
    }

    /// <summary>The index entry of a chunk (loads its page on demand).</summary>
    /// <exception cref="InvalidDataException">The index page is corrupt.</exception>
    public ChunkEntry GetEntry(long chunkIndex)
    {
        if ((ulong)chunkIndex >= (ulong)ChunkCount)
        {
            throw new ArgumentOutOfRangeException(nameof(chunkIndex), $"chunk {chunkIndex} is outside 0..{ChunkCount - 1}");
        }

        int perPage = Header.EntriesPerPage;
        int i = Array.BinarySearch(_pageNumbers, (uint)(chunkIndex / perPage));
        if (i < 0)
        {
            return ChunkEntry.Absent;
        }

        return _pages.GetOrLoad((uint)i, _loadPage)[chunkIndex % perPage];
    }

    private ChunkEntry[] LoadPage(uint directoryIndex)
    {
        try
        {
            return LoadPageOnce(directoryIndex);
        }
        catch (InvalidDataException) when (_object.Refetch(_directory[directoryIndex].Offset, _directory[directoryIndex].StoredLength))
        {
            return LoadPageOnce(directoryIndex); // the bytes came from a cache copy, now dropped: read them once more
        }
    }

    private ChunkEntry[] LoadPageOnce(uint directoryIndex)
    {
        var d = _directory[directoryIndex];
        int perPage = Header.EntriesPerPage;
        long firstChunk = (long)d.PageNumber * perPage;
        string where = $"{Path}: index page {d.PageNumber} (chunks {firstChunk}..{firstChunk + perPage - 1})";
        byte[] stored = ArrayPool<byte>.Shared.Rent(d.StoredLength);
        byte[]? plain = null;
        try
        {
            var s = stored.AsSpan(0, d.StoredLength);
            _object.ReadExactly(d.Offset, s);
            Interlocked.Add(ref _indexBytesRead, d.StoredLength);
            uint crc = Crc32C.Compute(s);
            if (crc != d.Crc)
            {
                throw new InvalidDataException($"{where}: checksum mismatch (stored 0x{d.Crc:X8}, computed 0x{crc:X8}): the index is corrupt");
            }

            ReadOnlySpan<byte> page = s;
            if (_keys != null)
            {
                plain = ArrayPool<byte>.Shared.Rent(d.StoredLength - ImageKeys.TagSize);
                var p = plain.AsSpan(0, d.StoredLength - ImageKeys.TagSize);
                if (!_keys.TryDecryptPage(d.PageNumber, s, p))
                {
                    throw new InvalidDataException($"{where}: authentication failed: the index is corrupt or was tampered with");
                }

                page = p;
            }

            var entries = new ChunkEntry[perPage];
            for (int k = 0; k < perPage; k++)
            {
                var e = ChunkEntry.Read(page.Slice(k * ChunkEntry.Size, ChunkEntry.Size));
                string? problem = ValidateEntry(e, firstChunk + k);
                if (problem != null)
                {
                    throw new InvalidDataException($"{where}: entry for chunk {firstChunk + k} is invalid: {problem}");
                }

                entries[k] = e;
            }

            return entries;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(stored);
            if (plain != null)
            {
                ArrayPool<byte>.Shared.Return(plain, clearArray: true);
            }
        }
    }

    private string? ValidateEntry(ChunkEntry e, long chunkIndex)
    {
        if (e.Kind == ChunkKind.Absent || e.Kind == ChunkKind.Zero)
        {
            return e.Kind == ChunkKind.Zero && chunkIndex >= ChunkCount ? "beyond the end of the disk" : null;
        }

        if (e.Kind != ChunkKind.Data)
        {
            return $"unknown kind {(byte)e.Kind}";
        }

        if (chunkIndex >= ChunkCount)
        {
            return "beyond the end of the disk";
        }

        var allowed = ChunkFlags.Compressed | ChunkFlags.Encrypted | ChunkFlags.SectorChecksums;
        bool encrypted = (e.Flags & ChunkFlags.Encrypted) != 0;
        bool sectors = (e.Flags & ChunkFlags.SectorChecksums) != 0;
        int chunkLength = ChunkLength(chunkIndex);
        int maxStored = chunkLength + (encrypted ? ImageKeys.TagSize : 0);
        int sectorStored = chunkLength + SectorChecksums.TableLength(chunkLength);
        return
            (e.Flags & ~allowed) != 0 ? $"unknown flags 0x{(byte)e.Flags:X2}" :
            encrypted != IsEncrypted ? "encryption flag disagrees with the header" :
            (e.Flags & ChunkFlags.Compressed) != 0 && Header.Codec == ChunkCodec.None ? "compressed chunk in an image without a codec" :
            sectors && e.Flags != ChunkFlags.SectorChecksums ? "sector checksums on a compressed or encrypted payload" :
            sectors && e.StoredLength != sectorStored ? $"stored length {e.StoredLength} is not {sectorStored} (a raw chunk and its sector checksums)" :
            !sectors && (e.StoredLength <= 0 || e.StoredLength > maxStored) ? $"stored length {e.StoredLength} is out of range 1..{maxStored}" :
            e.PayloadOffset < ImageHeader.Size || e.PayloadOffset > Trailer.DirectoryOffset - e.StoredLength ? $"payload offset {e.PayloadOffset} is outside the data area" :
            null;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> (exactly <see cref="ChunkLength"/> bytes) with the plaintext of a chunk:
    /// zeros for Zero and Absent entries, the verified and decompressed payload for Data entries.
    /// </summary>
    /// <exception cref="InvalidDataException">The chunk or its index page is corrupt (names file, chunk and disk offset).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ReadChunk(long chunkIndex, Span<byte> destination)
    {
        var entry = GetEntry(chunkIndex);
        if (destination.Length != ChunkLength(chunkIndex))
        {
            throw new ArgumentException($"chunk {chunkIndex} is {ChunkLength(chunkIndex)} bytes, buffer is {destination.Length}", nameof(destination));
        }

        if (entry.Kind != ChunkKind.Data)
        {
            destination.Clear();
            return;
        }

        ReadPayload(entry, chunkIndex, destination);
    }

    /// <summary>Reads a chunk like <see cref="ReadChunk"/> and also checks the SHA-256 of the plaintext (what verify does).</summary>
    /// <exception cref="InvalidDataException">The chunk is corrupt.</exception>
    public void VerifyChunk(long chunkIndex, Span<byte> scratch)
    {
        var entry = GetEntry(chunkIndex);
        if (entry.Kind != ChunkKind.Data)
        {
            return;
        }

        var plain = scratch[..ChunkLength(chunkIndex)];
        ReadPayload(entry, chunkIndex, plain);
        if (ChunkHash.Of(plain) != entry.Hash)
        {
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: SHA-256 of the plaintext does not match the index");
        }

        if (entry.Flags == ChunkFlags.SectorChecksums)
        {
            VerifySectorTable(entry, chunkIndex, plain);
        }
    }

    private void ReadPayload(ChunkEntry entry, long chunkIndex, Span<byte> destination)
    {
        try
        {
            ReadPayloadOnce(entry, chunkIndex, destination);
        }
        catch (InvalidDataException) when (_object.Refetch(entry.PayloadOffset, entry.StoredLength))
        {
            ReadPayloadOnce(entry, chunkIndex, destination); // the bytes came from a cache copy, now dropped: read them once more
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ReadPayloadOnce(ChunkEntry entry, long chunkIndex, Span<byte> destination)
    {
        if (entry.Flags == ChunkFlags.SectorChecksums)
        {
            ReadRawWithTable(entry, chunkIndex, destination);
            return;
        }

        if ((entry.Flags & (ChunkFlags.Compressed | ChunkFlags.Encrypted)) == 0 && entry.StoredLength == destination.Length)
        {
            // A raw chunk: read it straight into the caller's buffer and verify it there (one copy, no pool buffer).
            _object.ReadExactly(entry.PayloadOffset, destination);
            uint rawCrc = Crc32C.Compute(destination);
            if (rawCrc != entry.Crc)
            {
                destination.Clear();
                throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: checksum mismatch (stored 0x{entry.Crc:X8}, computed 0x{rawCrc:X8}): the chunk is corrupt");
            }

            return;
        }

        byte[] stored = ArrayPool<byte>.Shared.Rent(entry.StoredLength);
        byte[]? plain = null;
        try
        {
            var s = stored.AsSpan(0, entry.StoredLength);
            _object.ReadExactly(entry.PayloadOffset, s);
            uint crc = Crc32C.Compute(s);
            if (crc != entry.Crc)
            {
                throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: checksum mismatch (stored 0x{entry.Crc:X8}, computed 0x{crc:X8}): the chunk is corrupt");
            }

            byte[] data = stored;
            int dataLength = entry.StoredLength;
            if ((entry.Flags & ChunkFlags.Encrypted) != 0)
            {
                dataLength -= ImageKeys.TagSize;
                plain = ArrayPool<byte>.Shared.Rent(Math.Max(1, dataLength));
                if (!_keys!.TryDecryptChunk(entry.PayloadOffset, entry.Flags, s, plain.AsSpan(0, dataLength)))
                {
                    throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: authentication failed: the chunk is corrupt or was tampered with");
                }

                data = plain;
            }

            if ((entry.Flags & ChunkFlags.Compressed) != 0)
            {
                if (!ChunkCompressor.TryDecompress(Header.Codec, data, 0, dataLength, destination))
                {
                    destination.Clear(); // what a failed decompression left there is never handed on
                    throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: the compressed data does not decompress to {destination.Length} bytes");
                }
            }
            else if (dataLength == destination.Length)
            {
                data.AsSpan(0, dataLength).CopyTo(destination);
            }
            else
            {
                throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: raw chunk holds {dataLength} bytes, expected {destination.Length}");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(stored);
            if (plain != null)
            {
                ArrayPool<byte>.Shared.Return(plain, clearArray: true);
            }
        }
    }

    /// <summary>"file: chunk N (disk offset X)" for messages.</summary>
    internal string ChunkPlace(long chunkIndex) => $"{Path}: chunk {chunkIndex} (disk offset {chunkIndex * ChunkSize})";

    /// <summary>The facts `info` shows, from the header and trailer only.</summary>
    public ImageInfo GetInfo() => new(
        Path,
        Id,
        ParentId,
        $"{Header.MajorVersion}.{Header.MinorVersion}",
        Header.CreatedUtc,
        DiskSize,
        ChunkSize,
        Header.Codec,
        Header.Encryption,
        FileLength,
        Trailer.PayloadBytes,
        Trailer.IndexBytes,
        ChunkCount,
        Trailer.DataChunks,
        Trailer.ZeroChunks,
        ChunkCount - Trailer.DataChunks - Trailer.ZeroChunks,
        Trailer.UniquePayloads,
        Header.IsParentBound);

    /// <inheritdoc/>
    public void Dispose()
    {
        _keys?.Dispose();
        _object.Dispose();
        _pages.Dispose(); // gives the index pages' bytes back to the cache budget
    }

    /// <inheritdoc/>
    public override string ToString() => Path;
}
