using System.Buffers;
using System.Runtime.CompilerServices;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Raw payloads with sector checksums (ChunkFlags.SectorChecksums, Format/SectorChecksums.cs) can be read in parts:
//   a read of a few 4 KiB sectors of a chunk reads those sectors and their table entries (two positional reads) and
//   checks each sector against its entry. Nothing else of the chunk is read. A read that is not sector-aligned reads
//   the covering sectors into a pooled buffer and copies the slice, so every byte handed on was checked.
// - A whole-chunk read of such a payload checks the entry's CRC over plaintext and table, as for any payload: from a
//   local file the plaintext goes straight into the caller's buffer and the table is read beside it; from a remote
//   object the whole payload is one read (one request) into a pooled buffer.
// - Only where small reads are cheap (IImageObject.SmallReadsAreCheap: a local file): a remote image reads parts as
//   whole chunks, because there the sectors and their table would be two requests (or cache lookups) instead of one.
// - On a mismatch the destination is cleared, the range is refetched once when the object allows it (a cache copy),
//   and a second failure is an InvalidDataException naming the chunk and the sector: never wrong bytes.

/// <content>Reading raw chunks with sector checksums, whole or in parts.</content>
public sealed partial class BackupImageFile
{
    /// <summary>
    /// Reads <paramref name="destination"/>.Length bytes at <paramref name="inChunk"/> within chunk
    /// <paramref name="chunkIndex"/> without reading the rest of the chunk, when its payload has sector checksums
    /// (or it holds no data: zeros) and small reads of the image are cheap (a local file). Returns false, reading
    /// nothing, otherwise (the caller reads the chunk whole).
    /// </summary>
    /// <exception cref="InvalidDataException">A sector read fails its checksum (names file, chunk and sector).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryReadChunkPart(long chunkIndex, int inChunk, Span<byte> destination)
    {
        var entry = GetEntry(chunkIndex);
        int chunkLength = ChunkLength(chunkIndex);
        if ((uint)inChunk > (uint)chunkLength || destination.Length > chunkLength - inChunk)
        {
            throw new ArgumentOutOfRangeException(nameof(inChunk), $"{inChunk}+{destination.Length} lies outside chunk {chunkIndex} ({chunkLength} bytes)");
        }

        if (entry.Kind != ChunkKind.Data)
        {
            destination.Clear();
            return true;
        }

        if (!PartsReadAlone(entry))
        {
            return false;
        }

        if (destination.IsEmpty)
        {
            return true;
        }

        try
        {
            ReadPartOnce(entry, chunkIndex, chunkLength, inChunk, destination);
        }
        catch (InvalidDataException) when (_object.Refetch(entry.PayloadOffset, entry.StoredLength))
        {
            ReadPartOnce(entry, chunkIndex, chunkLength, inChunk, destination); // a cache copy was dropped: once more
        }

        return true;
    }

    /// <summary>Whether a part of chunk <paramref name="chunkIndex"/> can be read without reading the whole chunk.</summary>
    public bool CanReadChunkPart(long chunkIndex)
    {
        var entry = GetEntry(chunkIndex);
        return entry.Kind != ChunkKind.Data || PartsReadAlone(entry);
    }

    /// <summary>
    /// Whether reading chunk <paramref name="chunkIndex"/> whole is a checked copy: it holds no data (zeros), or its
    /// payload is neither compressed nor encrypted and lies in a local file (IImageObject.SmallReadsAreCheap; a remote
    /// chunk is a request, better loaded ahead than on the reader's thread).
    /// </summary>
    public bool ReadsWholeChunkAsCopy(long chunkIndex)
    {
        var entry = GetEntry(chunkIndex);
        return entry.Kind != ChunkKind.Data
            || ((entry.Flags & (ChunkFlags.Compressed | ChunkFlags.Encrypted)) == 0 && _object.SmallReadsAreCheap);
    }

    /// <summary>A Data entry whose parts are read alone: a raw payload with its sector table, from a local file.</summary>
    private bool PartsReadAlone(in ChunkEntry entry) => entry.Flags == ChunkFlags.SectorChecksums && _object.SmallReadsAreCheap;

    private void ReadPartOnce(ChunkEntry entry, long chunkIndex, int chunkLength, int inChunk, Span<byte> destination)
    {
        const int size = SectorChecksums.SectorSize;
        int end = inChunk + destination.Length;
        int first = inChunk / size;
        int last = (end - 1) / size;
        Span<byte> table = stackalloc byte[(last - first + 1) * sizeof(uint)]; // at most 4 KiB (a 4 MiB chunk)
        _object.ReadExactly(entry.PayloadOffset + chunkLength + (first * sizeof(uint)), table);
        int coverStart = first * size;
        int coverEnd = Math.Min(chunkLength, (last + 1) * size);
        if (coverStart == inChunk && coverEnd == end)
        {
            _object.ReadExactly(entry.PayloadOffset + inChunk, destination);
            CheckSectors(destination, first, table, chunkIndex);
            return;
        }

        byte[] cover = ArrayPool<byte>.Shared.Rent(coverEnd - coverStart);
        try
        {
            var c = cover.AsSpan(0, coverEnd - coverStart);
            _object.ReadExactly(entry.PayloadOffset + coverStart, c);
            CheckSectors(c, first, table, chunkIndex);
            c.Slice(inChunk - coverStart, destination.Length).CopyTo(destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(cover);
        }
    }

    private void CheckSectors(Span<byte> sectors, int firstSector, ReadOnlySpan<byte> table, long chunkIndex)
    {
        int bad = SectorChecksums.FirstMismatch(sectors, firstSector, table);
        if (bad >= 0)
        {
            sectors.Clear();
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: checksum mismatch in sector {bad} (disk offset {(chunkIndex * ChunkSize) + ((long)bad * SectorChecksums.SectorSize)}): the chunk is corrupt");
        }
    }

    /// <summary>
    /// A whole raw chunk with its table, the entry's CRC over both: locally the plaintext straight into the caller's
    /// buffer and the table beside it (two positional reads, no copy); from a remote object one read of the whole
    /// payload into a pooled buffer (one request), then the plaintext copied out once checked.
    /// </summary>
    private void ReadRawWithTable(ChunkEntry entry, long chunkIndex, Span<byte> destination)
    {
        uint crc;
        if (_object.SmallReadsAreCheap)
        {
            Span<byte> table = stackalloc byte[SectorChecksums.TableLength(destination.Length)];
            _object.ReadExactly(entry.PayloadOffset, destination);
            _object.ReadExactly(entry.PayloadOffset + destination.Length, table);
            crc = ~Crc32C.Update(Crc32C.Update(0xFFFFFFFFu, destination), table);
        }
        else
        {
            byte[] stored = ArrayPool<byte>.Shared.Rent(entry.StoredLength);
            try
            {
                var s = stored.AsSpan(0, entry.StoredLength);
                _object.ReadExactly(entry.PayloadOffset, s);
                crc = Crc32C.Compute(s);
                if (crc == entry.Crc)
                {
                    s[..destination.Length].CopyTo(destination);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(stored);
            }
        }

        if (crc != entry.Crc)
        {
            destination.Clear();
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: checksum mismatch (stored 0x{entry.Crc:X8}, computed 0x{crc:X8}): the chunk is corrupt");
        }
    }

    /// <summary>For verify: the table of a chunk read whole must match its plaintext (a writer's slip would otherwise only show on part reads).</summary>
    private void VerifySectorTable(ChunkEntry entry, long chunkIndex, ReadOnlySpan<byte> plain)
    {
        Span<byte> table = stackalloc byte[SectorChecksums.TableLength(plain.Length)];
        _object.ReadExactly(entry.PayloadOffset + plain.Length, table);
        int bad = SectorChecksums.FirstMismatch(plain, 0, table);
        if (bad >= 0)
        {
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: the checksum of sector {bad} in the payload's sector table does not match the chunk");
        }
    }
}
