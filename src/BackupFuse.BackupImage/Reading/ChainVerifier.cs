using System.Buffers;
using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - Reads every stored chunk of every image of a chain (not only the chunks the top image shows): CRC, GCM tag,
//   exact decompressed length and the SHA-256 of the plaintext against the index. Zero and absent chunks have
//   nothing to check.
// - Keeps going after a bad chunk or a bad index page: each is reported through the callback as it is found and
//   collected in the summary. A corrupt index page is reported once, against the first chunk it covers.
// - Chunks of one page are checked in parallel (one task per core); callbacks may therefore come from several threads
//   but never concurrently (they are serialized under a lock). Progress counts verified plaintext bytes.

/// <summary>A chunk (or index page) that failed verification.</summary>
/// <param name="ImagePath">The image file.</param>
/// <param name="ChunkIndex">The chunk (for a bad index page: the first chunk it covers).</param>
/// <param name="DiskOffset">Disk offset of the chunk.</param>
/// <param name="Reason">What is wrong.</param>
public sealed record BadChunk(string ImagePath, long ChunkIndex, long DiskOffset, string Reason);

/// <summary>Progress of a verification: plaintext bytes of stored chunks checked so far out of the total.</summary>
public readonly record struct VerifyProgress(long BytesDone, long BytesTotal);

/// <summary>Outcome of verifying a chain.</summary>
/// <param name="Images">Images checked.</param>
/// <param name="ChunksChecked">Data chunks read and checked.</param>
/// <param name="BytesChecked">Plaintext bytes checked.</param>
/// <param name="BadChunks">Every problem found, in the order found.</param>
public sealed record VerifyResult(int Images, long ChunksChecked, long BytesChecked, IReadOnlyList<BadChunk> BadChunks)
{
    /// <summary>Whether nothing was wrong.</summary>
    public bool IsValid => BadChunks.Count == 0;
}

/// <summary>Reads and checks every stored chunk of a chain.</summary>
public static class ChainVerifier
{
    /// <summary>Verifies every image of <paramref name="chain"/>; reports each problem as found and returns a summary.</summary>
    public static VerifyResult Verify(BackupChain chain, IProgress<VerifyProgress>? progress = null, Action<BadChunk>? onBadChunk = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chain);
        long total = chain.Layers.Sum(l => l.Trailer.DataChunks * (long)l.ChunkSize);
        var bad = new List<BadChunk>();
        var gate = new object();
        long chunks = 0;
        long bytes = 0;
        long lastReport = 0;

        void Report(BadChunk b)
        {
            lock (gate)
            {
                bad.Add(b);
                onBadChunk?.Invoke(b);
            }
        }

        foreach (var image in chain.Layers)
        {
            int perPage = image.Header.EntriesPerPage;
            long chunk = image.NextChunkInAnyPage(0);
            while (chunk < image.ChunkCount)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long pageStart = chunk;
                long pageEnd = Math.Min(image.ChunkCount, ((pageStart / perPage) + 1) * perPage);
                try
                {
                    image.GetEntry(pageStart);
                }
                catch (InvalidDataException e)
                {
                    Report(new BadChunk(image.Path, pageStart, pageStart * image.ChunkSize, e.Message));
                    chunk = image.NextChunkInAnyPage(pageEnd);
                    continue;
                }

                Parallel.For(pageStart, pageEnd, new ParallelOptions { CancellationToken = cancellationToken }, () => ArrayPool<byte>.Shared.Rent(image.ChunkSize), (c, _, scratch) =>
                {
                    if (image.GetEntry(c).Kind != ChunkKind.Data)
                    {
                        return scratch;
                    }

                    try
                    {
                        image.VerifyChunk(c, scratch);
                    }
                    catch (InvalidDataException e)
                    {
                        Report(new BadChunk(image.Path, c, c * image.ChunkSize, e.Message));
                    }
                    catch (IOException e)
                    {
                        Report(new BadChunk(image.Path, c, c * image.ChunkSize, $"{image.ChunkPlace(c)}: read error: {e.Message}"));
                    }

                    Interlocked.Increment(ref chunks);
                    long done = Interlocked.Add(ref bytes, image.ChunkLength(c));
                    long now = Environment.TickCount64;
                    long last = Interlocked.Read(ref lastReport);
                    if (progress != null && now - last >= 100 && Interlocked.CompareExchange(ref lastReport, now, last) == last)
                    {
                        progress.Report(new VerifyProgress(done, total));
                    }

                    return scratch;
                }, scratch => ArrayPool<byte>.Shared.Return(scratch));
                chunk = image.NextChunkInAnyPage(pageEnd);
            }
        }

        progress?.Report(new VerifyProgress(bytes, total));
        return new VerifyResult(chain.Layers.Count, chunks, bytes, bad);
    }
}
