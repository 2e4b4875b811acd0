using System.Buffers;
using System.Collections.Concurrent;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - Threads: one reader (this class's reader thread), WorkerCount workers, and the caller as the ordered writer.
//   The reader puts every item on the ordered queue first and then (data chunks only) on the work queue; the writer
//   takes items in order and waits for each to be done. Both queues are bounded (QueueDepth), so at most about
//   2 x QueueDepth chunk buffers are alive.
// - A hole run (chunks the source reports as holes) is one item, never read. For a full backup it costs nothing;
//   for an incremental the writer walks only the chunks of the run that lie in index pages the parent chain has,
//   recording Zero where the chain holds data.
// - The first failure on any thread cancels the others; Run rethrows it after all threads have stopped.

/// <summary>The read / hash+compress / ordered-write pipeline of one backup.</summary>
internal sealed class BackupPipeline(IDiskReader disk, ImageHeader header, BackupOptions options, ImageStreamWriter writer, IProgress<BackupProgress>? progress)
{
    private readonly int _chunkSize = header.ChunkSize;
    private readonly long _chunkCount = header.ChunkCount;
    private readonly BackupChain? _parent = options.Parent;
    private Exception? _failure;
    private long _sourceBytesRead;

    public long SourceBytesRead => Interlocked.Read(ref _sourceBytesRead);

    public void Run(CancellationToken ct)
    {
        int workers = Math.Max(1, options.WorkerCount);
        int depth = Math.Max(8, workers * 4);
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
                    var hole = new WorkItem(chunk, end - chunk);
                    hole.Done.Set();
                    ordered.Add(hole, cts.Token);
                    chunk = end;
                    continue;
                }

                byte[] buffer = ArrayPool<byte>.Shared.Rent(_chunkSize);
                var item = new WorkItem(chunk, 1) { Input = buffer, Length = length };
                try
                {
                    disk.Read(offset, buffer.AsSpan(0, length));
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    throw;
                }

                Interlocked.Add(ref _sourceBytesRead, length);
                ordered.Add(item, cts.Token);
                work.Add(item, cts.Token);
                chunk++;
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
                    Process(item);
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

    private void Process(WorkItem item)
    {
        var data = item.Input.AsSpan(0, item.Length);
        var (parentZero, parentHash) = _parent?.EffectiveChunk(item.Chunk) ?? (true, default);
        if (data.IndexOfAnyExcept((byte)0) < 0)
        {
            item.Result = parentZero ? ChunkKind.Absent : ChunkKind.Zero;
            return;
        }

        item.Hash = ChunkHash.Of(data);
        if (!parentZero && parentHash == item.Hash)
        {
            item.Result = ChunkKind.Absent;
            return;
        }

        item.Result = ChunkKind.Data;
        if (header.Codec != ChunkCodec.None)
        {
            byte[] output = ArrayPool<byte>.Shared.Rent(_chunkSize);
            int level = header.Codec == ChunkCodec.Zstd ? options.ZstdLevel : options.DeflateLevel;
            if (ChunkCompressor.TryCompress(header.Codec, data, output, level, out int written))
            {
                item.Output = output;
                item.OutputLength = written;
                item.Flags = ChunkFlags.Compressed;
                return;
            }

            ArrayPool<byte>.Shared.Return(output);
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
                else if (item.Result == ChunkKind.Zero)
                {
                    writer.AddZero(item.Chunk);
                }
                else if (item.Result == ChunkKind.Data)
                {
                    var payload = item.Output != null ? item.Output.AsSpan(0, item.OutputLength) : item.Input.AsSpan(0, item.Length);
                    writer.AddData(item.Chunk, item.Hash, payload, item.Flags);
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

    private sealed class WorkItem(long chunk, long count)
    {
        public long Chunk { get; } = chunk;

        public long Count { get; } = count;

        public byte[]? Input { get; init; }

        public int Length { get; init; }

        public ChunkKind Result { get; set; }

        public ChunkHash Hash { get; set; }

        public byte[]? Output { get; set; }

        public int OutputLength { get; set; }

        public ChunkFlags Flags { get; set; }

        public ManualResetEventSlim Done { get; } = new(false);

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
