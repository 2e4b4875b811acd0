using System.Buffers;
using System.Diagnostics;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - Folding writes ONE new file holding the disk state of a chain's top image, under the top's identity (an identity
//   names a state: DerivedImage, docs/lifecycle.md), whose parent is the first layer not folded: with every layer
//   folded it is a synthetic full (`merge`), with two an incremental merged into its parent (`merge --into-parent`),
//   with k the result of forgetting the k-1 points below the top (`prune`).
// - For each chunk the newest folded layer that says something (Data or Zero) answers, as a reader would. Data
//   payloads are COPIED as stored (checked, decrypted when encrypted, never inflated and deflated again), which is why
//   a merge runs at disk speed. The codec is per image (header), so the result takes the newest folded layer's codec,
//   and a compressed payload of a layer with ANOTHER codec (a Deflate full under zstd incrementals, or the reverse) is
//   inflated and compressed again with the result's codec (Transcode); copying it as is would make a chunk the
//   result's codec cannot read. In a full result Zero chunks are left Absent (reads as zeros); in an incremental they
//   stay Zero.
// - The header is the top's header copied with `with` (DerivedImage.Derive), so fields this code does not know (a
//   later minor version's) survive. Encryption: the result is encrypted iff the top is, with the top's salt and
//   iteration count (one passphrase, the same master key), under keys derived from a new file id. Folding an
//   encrypted layer into an unencrypted result is refused.
// - Crash safety: written to ".<dest name>.<random>.partial" in the destination's directory (never a *.bfi name, so no
//   catalog lists it; unique per run and created O_EXCL, so a planted file or symlink of that name is never followed,
//   truncated or deleted, and two runs never share one), fsynced, then VERIFIED
//   (opened as an image; every chunk's entry compared with the chain's, every Data chunk read back, decompressed and
//   hashed), and only then renamed onto its name (replacing the top's file when asked: processes that have the old
//   file open keep reading it) and the directory fsynced. A crash at any point leaves the old file or the new one,
//   both valid, plus perhaps a .partial file. Any failure deletes the .partial file this run created, and only it.
// - Callers serialise runs on one directory with LifecycleLock; the unique name protects even without it.
// - CrashPoint marks each phase for the crash-injection tests.
// - Single-threaded writer; verification reads in parallel (one task per core). Progress counts the disk twice over
//   one disk size: the first half while writing, the second while verifying.

/// <summary>Writes a synthetic full or a merged incremental of a chain's top image, verified before it is visible.</summary>
public static class ImageFolder
{
    /// <summary>
    /// Folds the top <paramref name="layers"/> images of <paramref name="chain"/> into <paramref name="destination"/>
    /// (all layers: a synthetic full). With <paramref name="replace"/> the destination may exist (typically the top's
    /// own file) and is replaced atomically; otherwise it must not exist.
    /// </summary>
    /// <exception cref="IOException">The destination cannot be written (names it and why).</exception>
    /// <exception cref="InvalidDataException">A source chunk is corrupt, or the written file did not verify.</exception>
    /// <exception cref="PassphraseException">The chain is encrypted and no usable passphrase was given.</exception>
    public static FoldResult Fold(BackupChain chain, int layers, string destination, PassphraseSource? passphrase, bool replace, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        if (layers < 1 || layers > chain.Layers.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(layers), $"layers must be 1..{chain.Layers.Count}");
        }

        var sw = Stopwatch.StartNew();
        var folded = chain.Layers.Take(layers).ToArray();
        var top = folded[0];
        var parent = layers < chain.Layers.Count ? chain.Layers[layers] : null;
        if (!top.IsEncrypted && folded.FirstOrDefault(l => l.IsEncrypted) is { } encrypted)
        {
            throw new InvalidDataException($"{top.Path} is not encrypted but {encrypted.Path}, which it would absorb, is: refusing to write encrypted data unencrypted");
        }

        string dest = Path.GetFullPath(destination);
        if (!replace && (File.Exists(dest) || Directory.Exists(dest)))
        {
            throw new IOException($"{dest} already exists: an image is never overwritten");
        }

        var bottom = chain.Layers[^1];
        var header = DerivedImage.Derive(top.Header, top.Trailer, parent?.Header, parent?.Trailer, DerivedImage.LineageId(bottom.Header) ?? bottom.Id, out Guid fileId);
        if (folded.Any(l => l.Header.Codec != ChunkCodec.None))
        {
            header = header with { Codec = folded.First(l => l.Header.Codec != ChunkCodec.None).Header.Codec };
        }

        ImageKeys? keys = null;
        if (header.Encryption != EncryptionMethod.None)
        {
            if (passphrase == null)
            {
                throw new PassphraseException($"{top.Path} is encrypted: a passphrase is needed");
            }

            keys = ImageKeys.Create(passphrase, header.KdfSalt, header.KdfIterations, fileId, out var check);
            header = header with { KeyCheck = check };
        }

        string partial = Path.Combine(Path.GetDirectoryName(dest)!, $".{Path.GetFileName(dest)}.{Guid.NewGuid():N}.partial");
        FileStream? fs = null;
        bool created = false;
        try
        {
            WriteResult written;
            using (keys)
            {
                // CreateNew: O_CREAT|O_EXCL, which fails on any existing name, a symlink included (never followed).
                fs = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
                created = true;
                written = Write(folded, parent == null, header, keys, fs, progress, cancellationToken);
                fs.Flush(flushToDisk: true);
                fs.Dispose();
                fs = null;
            }

            CrashPoint.Hit("fold: written and fsynced");
            Verify(folded, parent, partial, passphrase, written, progress, cancellationToken);
            CrashPoint.Hit("fold: verified");
            long size = new FileInfo(partial).Length;
            DurableFile.Publish(partial, dest, overwrite: replace);
            CrashPoint.Hit("fold: renamed and directory synced");
            return new FoldResult(dest, header.ImageId, header.ParentId, layers, size, written.DataChunks, written.ZeroChunks, written.PayloadBytes, sw.Elapsed);
        }
        catch
        {
            try
            {
                fs?.Dispose();
            }
            catch (IOException)
            {
                // Flushing the rest failed too (a full disk); the partial file goes anyway.
            }

            try
            {
                if (created)
                {
                    File.Delete(partial);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A .partial file is never listed as an image; nothing more to do.
            }

            throw;
        }
    }

    private static WriteResult Write(BackupImageFile[] folded, bool full, ImageHeader header, ImageKeys? keys, Stream output, IProgress<BackupProgress>? progress, CancellationToken ct)
    {
        var writer = new ImageStreamWriter(output, header, keys, deduplicate: true);
        int maxStored = header.ChunkSize + Math.Max(ImageKeys.TagSize, SectorChecksums.TableLength(header.ChunkSize));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(maxStored);
        byte[] plain = ArrayPool<byte>.Shared.Rent(header.ChunkSize);
        byte[] recompressed = ArrayPool<byte>.Shared.Rent(header.ChunkSize);
        long halfway = header.ChunkCount / 2;
        bool halfwayHit = false;
        try
        {
            for (long c = Next(folded, 0); c < header.ChunkCount; c = Next(folded, c + 1))
            {
                ct.ThrowIfCancellationRequested();
                var (entry, source) = Effective(folded, c);
                if (entry.Kind == ChunkKind.Data)
                {
                    int length = source!.ReadPayloadForCopy(entry, c, buffer);
                    var flags = entry.Flags & ChunkFlags.Compressed;
                    byte[] payload = buffer;
                    if (flags != 0 && source.Header.Codec != header.Codec)
                    {
                        (payload, length, flags) = Transcode(source, c, buffer, length, header.Codec, plain, recompressed);
                    }

                    writer.AddData(c, entry.Hash, payload.AsSpan(0, length), flags);
                }
                else if (entry.Kind == ChunkKind.Zero && !full)
                {
                    writer.AddZero(c);
                }

                if (!halfwayHit && c >= halfway)
                {
                    halfwayHit = true;
                    output.Flush();
                    CrashPoint.Hit("fold: half of the payloads written");
                }

                if ((c & 1023) == 0)
                {
                    progress?.Report(new BackupProgress(c * header.ChunkSize / 2, header.DiskSize, writer.Position));
                }
            }

            writer.Finish();
            return new WriteResult(writer.DataChunks, writer.ZeroChunks, writer.PayloadBytes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: keys != null);
            ArrayPool<byte>.Shared.Return(plain, clearArray: keys != null);
            ArrayPool<byte>.Shared.Return(recompressed, clearArray: keys != null);
        }
    }

    /// <summary>
    /// A compressed payload of a layer whose codec is not the result's: inflated with the layer's codec (exactly one
    /// chunk, else the chunk is corrupt) and compressed again with the result's at its default level, or stored raw
    /// when that does not shrink it or the result has no codec. Returns the buffer holding the new payload.
    /// </summary>
    private static (byte[] Payload, int Length, ChunkFlags Flags) Transcode(BackupImageFile source, long chunk, byte[] stored, int storedLength, ChunkCodec codec, byte[] plain, byte[] recompressed)
    {
        int chunkLength = source.ChunkLength(chunk);
        if (!ChunkCompressor.TryDecompress(source.Header.Codec, stored, 0, storedLength, plain.AsSpan(0, chunkLength)))
        {
            throw new InvalidDataException($"{source.ChunkPlace(chunk)}: the compressed data does not decompress to {chunkLength} bytes");
        }

        if (codec != ChunkCodec.None
            && ChunkCompressor.TryCompress(codec, plain.AsSpan(0, chunkLength), recompressed, ChunkCompressor.DefaultLevelOf(codec), out int written))
        {
            return (recompressed, written, ChunkFlags.Compressed);
        }

        return (plain, chunkLength, ChunkFlags.None);
    }

    /// <summary>Checks the written file against the chain before it becomes visible (see the design notes).</summary>
    private static void Verify(BackupImageFile[] folded, BackupImageFile? parent, string partial, PassphraseSource? passphrase, WriteResult written, IProgress<BackupProgress>? progress, CancellationToken ct)
    {
        using var result = BackupImageFile.Open(partial, passphrase);
        var top = folded[0];
        string problem(string what) => $"{partial}: the merged image does not reproduce {top.Path}: {what}; it was not made visible";
        if (result.Id != top.Id || result.DiskSize != top.DiskSize || result.ChunkSize != top.ChunkSize)
        {
            throw new InvalidDataException(problem("identity or geometry differs"));
        }

        if (parent != null ? result.ParentId != parent.Id || !ParentBinding.Matches(result.Header, parent.Header, parent.Trailer) : !result.IsFull)
        {
            throw new InvalidDataException(problem("its parent binding is wrong"));
        }

        if (!DerivedImage.SameState(DerivedImage.StateBinding(result.Header, result.Trailer), DerivedImage.StateBinding(top.Header, top.Trailer)))
        {
            throw new InvalidDataException(problem("its state binding differs"));
        }

        if (result.Trailer.DataChunks != written.DataChunks || result.Trailer.ZeroChunks != written.ZeroChunks)
        {
            throw new InvalidDataException(problem("its chunk counts differ from what was written"));
        }

        // Every chunk the chain says something about: the same answer (Data with the same hash, or zeros).
        bool full = parent == null;
        for (long c = Next(folded, 0); c < result.ChunkCount; c = Next(folded, c + 1))
        {
            ct.ThrowIfCancellationRequested();
            var expected = Effective(folded, c).Entry;
            var actual = result.GetEntry(c);
            bool same = expected.Kind == ChunkKind.Data
                ? actual.Kind == ChunkKind.Data && actual.Hash == expected.Hash
                : full ? actual.Kind != ChunkKind.Data : actual.Kind == expected.Kind;
            if (!same)
            {
                throw new InvalidDataException(problem($"chunk {c} is {actual.Kind}, the chain has {expected.Kind}"));
            }
        }

        // Every stored chunk reads back (CRC, GCM tag, exact inflation) to the plaintext its hash names.
        long done = 0;
        long total = result.Trailer.DataChunks * (long)result.ChunkSize;
        var chunks = new List<long>();
        for (long c = result.NextChunkInAnyPage(0); c < result.ChunkCount; c = result.NextChunkInAnyPage(c + 1))
        {
            if (result.GetEntry(c).Kind == ChunkKind.Data)
            {
                chunks.Add(c);
            }
        }

        var options = new ParallelOptions { CancellationToken = ct };
        if (chunks.Count == 0)
        {
            // An all-zero disk stores no payload (Partitioner.Create refuses an empty range).
            progress?.Report(new BackupProgress(result.DiskSize, result.DiskSize, 0));
            return;
        }

        Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(0, chunks.Count, 256), options, range =>
        {
            byte[] scratch = ArrayPool<byte>.Shared.Rent(result.ChunkSize);
            try
            {
                for (int i = range.Item1; i < range.Item2; i++)
                {
                    result.VerifyChunk(chunks[i], scratch);
                }

                long now = Interlocked.Add(ref done, (range.Item2 - range.Item1) * (long)result.ChunkSize);
                progress?.Report(new BackupProgress((result.DiskSize / 2) + (total == 0 ? 0 : now * (result.DiskSize / 2) / total), result.DiskSize, 0));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch, clearArray: true);
            }
        });
        progress?.Report(new BackupProgress(result.DiskSize, result.DiskSize, 0));
    }

    private static long Next(BackupImageFile[] folded, long chunk)
    {
        long next = long.MaxValue;
        foreach (var l in folded)
        {
            // An older image of a file-level chain is shorter (children extend the stream): past its end it has nothing.
            long n = chunk < l.ChunkCount ? l.NextChunkInAnyPage(chunk) : long.MaxValue;
            next = Math.Min(next, n < l.ChunkCount ? n : long.MaxValue);
        }

        return next;
    }

    private static (ChunkEntry Entry, BackupImageFile? Source) Effective(BackupImageFile[] folded, long chunk)
    {
        foreach (var l in folded)
        {
            var e = chunk < l.ChunkCount ? l.GetEntry(chunk) : ChunkEntry.Absent;
            if (e.Kind != ChunkKind.Absent)
            {
                return (e, l);
            }
        }

        return (ChunkEntry.Absent, null);
    }

    private sealed record WriteResult(long DataChunks, long ZeroChunks, long PayloadBytes);
}

/// <summary>What a fold wrote.</summary>
/// <param name="Path">The image written.</param>
/// <param name="ImageId">Its identity (that of the point it reproduces).</param>
/// <param name="ParentId">Its parent (<see cref="Guid.Empty"/> for a synthetic full).</param>
/// <param name="LayersFolded">How many images of the chain it replaces.</param>
/// <param name="FileSize">Size of the file.</param>
/// <param name="DataChunks">Data chunks.</param>
/// <param name="ZeroChunks">Zero chunks.</param>
/// <param name="PayloadBytes">Bytes of stored payloads.</param>
/// <param name="Elapsed">Time taken, verification included.</param>
public sealed record FoldResult(string Path, Guid ImageId, Guid ParentId, int LayersFolded, long FileSize, long DataChunks, long ZeroChunks, long PayloadBytes, TimeSpan Elapsed)
{
    /// <summary>Whether the result is a full image.</summary>
    public bool IsFull => ParentId == Guid.Empty;
}
