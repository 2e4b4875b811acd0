using System.Buffers;
using System.Collections.Concurrent;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - Threads: one reader (this class's reader thread), WorkerCount workers, and the caller as the ordered writer.
//   The reader puts every item on the ordered queue first and then (data items only) on the work queue; the writer
//   takes items in order and waits for each to be done. Both queues are bounded (QueueDepth: four items per worker,
//   at most 32 MiB of them, at least workers + 2), so at most about 2 x QueueDepth items are alive: about 16 MiB on 2
//   cores, and never more than about 2 x 32 MiB plus the workers' items on a large machine.
// - A data item is a batch of up to BatchBytes (1 MiB) of consecutive chunks that hold data: one read of the source,
//   one hand-off to a worker, one wait of the writer for all of them. With one item per 64 KiB chunk the queues' locks
//   and wake-ups (some four per chunk, each dear on a virtual machine whose idle vCPU has to be woken) kept the two
//   cores a fifth idle (156-167 % CPU); a batch pays them once per 16 chunks. Each chunk of a batch is still hashed,
//   compared with the parent and compressed on its own, and written as its own entry.
// - A hole run (chunks the source reports as holes) is one item, never read. For a full backup it costs nothing;
//   for an incremental the writer walks only the chunks of the run that lie in index pages the parent chain has,
//   recording Zero where the chain holds data.
// - The first failure on any thread cancels the others; Run rethrows it after all threads have stopped.

/// <summary>The read / hash+compress / ordered-write pipeline of one backup.</summary>
internal sealed class BackupPipeline(IDiskReader disk, ImageHeader header, BackupOptions options, ImageStreamWriter writer, IProgress<BackupProgress>? progress)
{
    /// <summary>The most source bytes one data item (a batch of chunks) holds, unless one chunk is larger.</summary>
    public const int BatchBytes = 1 << 20;

    /// <summary>The bytes of items each queue may hold (see <see cref="QueueDepth"/>).</summary>
    public const long QueueBytes = 32L << 20;

    private readonly int _chunkSize = header.ChunkSize;
    private readonly long _chunkCount = header.ChunkCount;
    private readonly BackupChain? _parent = options.Parent;
    private Exception? _failure;
    private long _sourceBytesRead;

    public long SourceBytesRead => Interlocked.Read(ref _sourceBytesRead);

    public void Run(CancellationToken ct)
    {
        int workers = Math.Max(1, options.WorkerCount);
        int depth = QueueDepth(workers, _chunkSize);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var ordered = new BlockingCollection<WorkItem>(depth);
        using var work = new BlockingCollection<WorkItem>(depth);
        var threads = new List<Thread> { new(() => ReadLoop(ordered, work, cts)) { Name = "backup reader", IsBackground = true } };
        for (int i = 0; i < workers; i++)
        {
            threads.Add(new Thread(() => WorkLoop(work, cts)) { Name = $"backup worker {i}", IsBackground = true });
        }

        foreach (var t in threads)
        {
            t.Start();
        }

        try
        {
            WriteLoop(ordered, cts.Token);
        }
        catch (Exception e)
        {
            Fail(e, cts);
        }
        finally
        {
            if (Volatile.Read(ref _failure) != null)
            {
                cts.Cancel(); // unblock the reader and the workers; after success they end on their own
            }

            foreach (var t in threads)
            {
                t.Join();
            }
        }

        if (_failure != null)
        {
            ct.ThrowIfCancellationRequested();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_failure);
        }
    }

    /// <summary>
    /// Items per queue: four per worker, so none waits for work, but no more than QueueBytes of batches per queue (a
    /// data item holds up to twice its batch: the source bytes and their compressed form), and never fewer than the
    /// workers and two.
    /// </summary>
    internal static int QueueDepth(int workers, int chunkSize)
    {
        long itemBytes = 2L * Math.Max(chunkSize, BatchBytes / chunkSize * chunkSize);
        return (int)Math.Max(workers + 2, Math.Min(workers * 4L, QueueBytes / itemBytes));
    }

    private void Fail(Exception e, CancellationTokenSource cts)
    {
        // A cancellation caused by an earlier failure must not replace that failure: the first one wins.
        Interlocked.CompareExchange(ref _failure, e, null);
        cts.Cancel();
    }

    private void ReadLoop(BlockingCollection<WorkItem> ordered, BlockingCollection<WorkItem> work, CancellationTokenSource cts)
    {
        try
        {
            int batchChunks = Math.Max(1, BatchBytes / _chunkSize);
            long knownDataEnd = 0;
            long chunk = 0;
            while (chunk < _chunkCount)
            {
                cts.Token.ThrowIfCancellationRequested();
                long offset = chunk * _chunkSize;
                int length = (int)Math.Min(_chunkSize, disk.Length - offset);
                long dataStart = offset;
                if (offset >= knownDataEnd)
                {
                    dataStart = disk.NextData(offset);
                    knownDataEnd = dataStart >= disk.Length ? disk.Length : disk.NextHole(dataStart);
                }

                if (dataStart >= offset + length)
                {
                    long end = dataStart >= disk.Length ? _chunkCount : dataStart / _chunkSize;
                    var hole = WorkItem.Hole(chunk, end - chunk);
                    ordered.Add(hole, cts.Token);
                    chunk = end;
                    continue;
                }

                // A batch: this chunk and those after it that hold data before the next hole, up to BatchBytes.
                long dataChunksEnd = (knownDataEnd + _chunkSize - 1) / _chunkSize;
                int count = (int)Math.Max(1, Math.Min(Math.Min(batchChunks, _chunkCount - chunk), dataChunksEnd - chunk));
                int bytes = (int)Math.Min((long)count * _chunkSize, disk.Length - offset);
                var item = WorkItem.Batch(chunk, count, _chunkSize, bytes);
                try
                {
                    disk.Read(offset, item.Input.AsSpan(0, bytes));
                }
                catch
                {
                    item.Release();
                    throw;
                }

                Interlocked.Add(ref _sourceBytesRead, bytes);
                ordered.Add(item, cts.Token);
                work.Add(item, cts.Token);
                chunk += count;
            }
        }
        catch (Exception e)
        {
            Fail(e, cts);
        }
        finally
        {
            ordered.CompleteAdding();
            work.CompleteAdding();
        }
    }

    private void WorkLoop(BlockingCollection<WorkItem> work, CancellationTokenSource cts)
    {
        try
        {
            foreach (var item in work.GetConsumingEnumerable(cts.Token))
            {
                try
                {
                    for (int k = 0; k < item.Count; k++)
                    {
                        Process(item, k);
                    }
                }
                catch (Exception e)
                {
                    Fail(e, cts); // before Done: the writer must see the failure, never the batch's unset results
                }
                finally
                {
                    item.Done.Set();
                }
            }
        }
        catch (Exception e)
        {
            Fail(e, cts);
        }
    }

    private void Process(WorkItem item, int k)
    {
        var data = item.ChunkInput(k);
        ref var result = ref item.Results[k];
        var (parentZero, parentHash) = _parent?.EffectiveChunk(item.Chunk + k) ?? (true, default);
        if (data.IndexOfAnyExcept((byte)0) < 0)
        {
            result.Kind = parentZero ? ChunkKind.Absent : ChunkKind.Zero;
            return;
        }

        result.Hash = ChunkHash.Of(data);
        if (!parentZero && parentHash == result.Hash)
        {
            result.Kind = ChunkKind.Absent;
            return;
        }

        result.Kind = ChunkKind.Data;
        if (header.Codec != ChunkCodec.None)
        {
            item.Output ??= ArrayPool<byte>.Shared.Rent(item.Length);
            int level = header.Codec == ChunkCodec.Zstd ? options.ZstdLevel : options.DeflateLevel;
            if (ChunkCompressor.TryCompress(header.Codec, data, item.ChunkOutputSpace(k), level, out int written))
            {
                result.OutputLength = written;
                result.Flags = ChunkFlags.Compressed;
            }
        }
    }

    private void WriteLoop(BlockingCollection<WorkItem> ordered, CancellationToken ct)
    {
        long lastReport = Environment.TickCount64;
        foreach (var item in ordered.GetConsumingEnumerable(ct))
        {
            item.Done.Wait(ct);
            try
            {
                if (_failure != null)
                {
                    return;
                }

                if (item.Input == null)
                {
                    WriteHoleRun(item.Chunk, item.Chunk + item.Count);
                }
                else
                {
                    for (int k = 0; k < item.Count; k++)
                    {
                        var result = item.Results[k];
                        if (result.Kind == ChunkKind.Zero)
                        {
                            writer.AddZero(item.Chunk + k);
                        }
                        else if (result.Kind == ChunkKind.Data)
                        {
                            var payload = result.Flags == ChunkFlags.Compressed ? item.ChunkOutputSpace(k)[..result.OutputLength] : item.ChunkInput(k);
                            writer.AddData(item.Chunk + k, result.Hash, payload, result.Flags);
                        }
                    }
                }
            }
            finally
            {
                item.Release();
            }

            long now = Environment.TickCount64;
            if (progress != null && now - lastReport >= 100)
            {
                lastReport = now;
                long done = Math.Min(header.DiskSize, (item.Chunk + item.Count) * _chunkSize);
                progress.Report(new BackupProgress(done, header.DiskSize, writer.Position));
            }
        }
    }

    private void WriteHoleRun(long first, long end)
    {
        if (_parent == null)
        {
            return; // a full backup: holes are absent chunks, which read as zeros
        }

        long chunk = first;
        while (chunk < end)
        {
            chunk = _parent.NextChunkInAnyPage(chunk);
            if (chunk >= end)
            {
                break;
            }

            if (!_parent.EffectiveChunk(chunk).IsZero)
            {
                writer.AddZero(chunk);
            }

            chunk++;
        }
    }

    /// <summary>What a worker found for one chunk of a batch.</summary>
    private struct ChunkResult
    {
        public ChunkKind Kind;
        public ChunkHash Hash;
        public int OutputLength;
        public ChunkFlags Flags;
    }

    /// <summary>A hole run (no Input), or a batch of Count consecutive chunks read as one.</summary>
    private sealed class WorkItem
    {
        private readonly int _chunkSize;

        private WorkItem(long chunk, long count, int chunkSize, byte[]? input, int length)
        {
            Chunk = chunk;
            Count = count;
            _chunkSize = chunkSize;
            Input = input;
            Length = length;
            Results = input == null ? [] : new ChunkResult[count];
        }

        public long Chunk { get; }

        public long Count { get; }

        public byte[]? Input { get; }

        /// <summary>Source bytes in <see cref="Input"/> (the last chunk of the disk may be short).</summary>
        public int Length { get; }

        public ChunkResult[] Results { get; }

        /// <summary>Compressed chunks, each at its chunk's offset within the batch (rented on the first need).</summary>
        public byte[]? Output { get; set; }

        public ManualResetEventSlim Done { get; } = new(false);

        /// <summary>A hole run of <paramref name="count"/> chunks: nothing to read or process, done from the start.</summary>
        public static WorkItem Hole(long chunk, long count)
        {
            var hole = new WorkItem(chunk, count, 0, null, 0);
            hole.Done.Set();
            return hole;
        }

        /// <summary>A batch of <paramref name="count"/> chunks, <paramref name="length"/> source bytes, in a rented buffer.</summary>
        public static WorkItem Batch(long chunk, int count, int chunkSize, int length) =>
            new(chunk, count, chunkSize, ArrayPool<byte>.Shared.Rent(length), length);

        public Span<byte> ChunkInput(int k)
        {
            int start = k * _chunkSize;
            return Input.AsSpan(start, Math.Min(_chunkSize, Length - start));
        }

        public Span<byte> ChunkOutputSpace(int k) => Output.AsSpan(k * _chunkSize, Math.Min(_chunkSize, Length - (k * _chunkSize)));

        public void Release()
        {
            if (Input != null)
            {
                ArrayPool<byte>.Shared.Return(Input);
            }

            if (Output != null)
            {
                ArrayPool<byte>.Shared.Return(Output);
                Output = null;
            }

            Done.Dispose();
        }
    }
}
