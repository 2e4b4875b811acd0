using System.Buffers;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - Writes one image front to back and never seeks: header, then payloads interleaved with index pages (a page is
//   written as soon as the writer moves past its last chunk), then the directory and the trailer. The stream may be a
//   pipe; the position is counted here, never asked of the stream.
// - Chunks must be given in ascending order; chunks never given are Absent. Only non-empty pages are written, so a
//   sparse disk costs nothing in index space.
// - Deduplication: a map from plaintext SHA-256 to the first stored payload. It is bounded (MaxDedupEntries) so memory
//   does not grow with the disk; past the bound new payloads are simply not remembered.
// - Encryption happens here, not in the workers, because the nonce and AAD bind the payload's file offset, which only
//   the ordered writer knows. AES-GCM with AES-NI costs far less than Deflate, so this thread does not limit speed.
// - A raw, unencrypted payload is followed by its sector checksums (Format/SectorChecksums.cs, flag
//   SectorChecksums): 4 bytes per 4 KiB, computed here so every writer (backup, file backup, merge) adds them.
// - Single-threaded by design (the pipeline's writer thread).

/// <summary>Serializes an image onto a forward-only stream.</summary>
internal sealed class ImageStreamWriter
{
    private const int MaxDedupEntries = 1 << 20;

    private readonly Stream _out;
    private readonly ImageHeader _header;
    private readonly ImageKeys? _keys;
    private readonly bool _dedup;
    private readonly byte[] _page;
    private readonly List<IndexDirectoryEntry> _directory = [];
    private readonly Dictionary<ChunkHash, ChunkEntry> _stored = [];
    private long _currentPage = -1;
    private bool _pageDirty;
    private long _lastChunk = -1;

    public ImageStreamWriter(Stream output, ImageHeader header, ImageKeys? keys, bool deduplicate)
    {
        _out = output;
        _header = header;
        _keys = keys;
        _dedup = deduplicate;
        _page = new byte[header.EntriesPerPage * ChunkEntry.Size];
        Span<byte> hb = stackalloc byte[ImageHeader.Size];
        header.WriteTo(hb);
        Write(hb);
    }

    public long Position { get; private set; }

    public long DataChunks { get; private set; }

    public long ZeroChunks { get; private set; }

    public long UniquePayloads { get; private set; }

    public long PayloadBytes { get; private set; }

    public long IndexBytes { get; private set; }

    /// <summary>Records a zero chunk.</summary>
    public void AddZero(long chunk)
    {
        SetEntry(chunk, ChunkEntry.Zero);
        ZeroChunks++;
    }

    /// <summary>Stores a data chunk (or references an identical payload already stored).</summary>
    public void AddData(long chunk, ChunkHash hash, ReadOnlySpan<byte> payload, ChunkFlags flags)
    {
        if (_dedup && _stored.TryGetValue(hash, out var existing))
        {
            SetEntry(chunk, existing);
            DataChunks++;
            return;
        }

        long offset = Position;
        byte[]? encrypted = null;
        try
        {
            ReadOnlySpan<byte> stored = payload;
            if (_keys != null)
            {
                flags |= ChunkFlags.Encrypted;
                encrypted = ArrayPool<byte>.Shared.Rent(payload.Length + ImageKeys.TagSize);
                var e = encrypted.AsSpan(0, payload.Length + ImageKeys.TagSize);
                _keys.EncryptChunk(offset, flags, payload, e);
                stored = e;
            }

            uint crc = Crc32C.Update(0xFFFFFFFFu, stored);
            int length = stored.Length;
            Write(stored);
            if (flags == ChunkFlags.None)
            {
                // A raw payload gets its sector checksums, so that readers can check a part of it alone.
                Span<byte> table = stackalloc byte[SectorChecksums.TableLength(payload.Length)];
                SectorChecksums.Compute(payload, table);
                crc = Crc32C.Update(crc, table);
                length += table.Length;
                Write(table);
                flags = ChunkFlags.SectorChecksums;
            }

            var entry = new ChunkEntry(ChunkKind.Data, flags, offset, length, ~crc, hash);
            SetEntry(chunk, entry);
            DataChunks++;
            UniquePayloads++;
            PayloadBytes += length;
            if (_dedup && _stored.Count < MaxDedupEntries)
            {
                _stored[hash] = entry;
            }
        }
        finally
        {
            if (encrypted != null)
            {
                ArrayPool<byte>.Shared.Return(encrypted);
            }
        }
    }

    private void SetEntry(long chunk, ChunkEntry entry)
    {
        if (chunk <= _lastChunk)
        {
            throw new InvalidOperationException($"chunks must be added in ascending order ({chunk} after {_lastChunk})");
        }

        _lastChunk = chunk;
        long page = chunk / _header.EntriesPerPage;
        if (page != _currentPage)
        {
            FlushPage();
            _currentPage = page;
            Array.Clear(_page);
        }

        entry.WriteTo(_page.AsSpan((int)(chunk % _header.EntriesPerPage) * ChunkEntry.Size));
        _pageDirty = true;
    }

    private void FlushPage()
    {
        if (!_pageDirty)
        {
            return;
        }

        uint number = (uint)_currentPage;
        ReadOnlySpan<byte> stored = _page;
        byte[]? encrypted = null;
        if (_keys != null)
        {
            encrypted = new byte[_page.Length + ImageKeys.TagSize];
            _keys.EncryptPage(number, _page, encrypted);
            stored = encrypted;
        }

        _directory.Add(new IndexDirectoryEntry(number, stored.Length, Position, Crc32C.Compute(stored)));
        Write(stored);
        IndexBytes += stored.Length;
        _pageDirty = false;
    }

    /// <summary>Writes the last page, the directory and the trailer, and flushes the stream.</summary>
    public void Finish()
    {
        FlushPage();
        long directoryOffset = Position;
        var dir = new byte[_directory.Count * IndexDirectoryEntry.Size];
        for (int i = 0; i < _directory.Count; i++)
        {
            _directory[i].WriteTo(dir.AsSpan(i * IndexDirectoryEntry.Size));
        }

        Write(dir);
        IndexBytes += dir.Length;
        var trailer = new ImageTrailer
        {
            ImageId = _header.ImageId,
            DirectoryOffset = directoryOffset,
            DirectoryCount = _directory.Count,
            DirectoryCrc = Crc32C.Compute(dir),
            DataChunks = DataChunks,
            ZeroChunks = ZeroChunks,
            UniquePayloads = UniquePayloads,
            PayloadBytes = PayloadBytes,
            IndexBytes = IndexBytes,
        };
        Span<byte> tb = stackalloc byte[ImageTrailer.Size];
        trailer.WriteTo(tb);
        Write(tb);
        _out.Flush();
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _out.Write(bytes);
        Position += bytes.Length;
    }
}
