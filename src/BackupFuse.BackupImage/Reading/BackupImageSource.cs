using System.Buffers;
using System.Runtime.CompilerServices;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - One layer of a chain. GetExtent answers from the index alone: Data for stored chunks, Zero for zero-flagged
//   chunks, Unallocated for chunks an incremental does not hold. In a full image (no parent) an absent chunk is a
//   hole of the source disk and is reported as Zero, so a full image is a complete disk on its own.
// - Runs of absent pages are skipped a page (EntriesPerPage chunks) at a time without loading anything, so extent
//   queries over a 1 TiB sparse image stay cheap.
// - Read decompresses whole chunks: straight into the caller's buffer when the request covers a chunk, otherwise into
//   a pooled buffer and copies the slice; a part of a raw chunk with sector checksums is read and checked alone.
//   ReadsPartCheaply tells the cache above which reads are plain copies: zeros, and from a local file a whole chunk
//   stored raw or a part of one with sector checksums; never a compressed or encrypted chunk, nor a remote one.
// - No decompressed-chunk cache here: caching belongs to a filter above the chain (one cache for the whole stack
//   instead of one per layer).
// - Thread-safe because BackupImageFile is; this class has no mutable state.

/// <summary>One backup image as a read-only block source (a layer for <see cref="ChainSource"/>).</summary>
public sealed class BackupImageSource : BlockSource
{
    private readonly bool _ownsFile;

    /// <summary>Serves <paramref name="file"/>; disposes it with the source only when <paramref name="ownsFile"/>.</summary>
    public BackupImageSource(BackupImageFile file, bool ownsFile = false)
    {
        File = file ?? throw new ArgumentNullException(nameof(file));
        _ownsFile = ownsFile;
    }

    /// <summary>The image.</summary>
    public BackupImageFile File { get; }

    /// <inheritdoc/>
    public override long Length => File.DiskSize;

    /// <inheritdoc/>
    public override int BlockSize => 4096;

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        int cs = File.ChunkSize;
        long end = Math.Min(Length, offset + Math.Max(1, maxLength));
        long chunk = offset / cs;
        var kind = KindOf(chunk);
        long pos = (chunk + 1) * cs;
        var absentKind = File.IsFull ? ExtentKind.Zero : ExtentKind.Unallocated;
        while (pos < end)
        {
            long c = pos / cs;
            if (kind == absentKind && !File.HasPageFor(c))
            {
                pos = File.NextChunkInAnyPage(c) * cs;
                continue;
            }

            if (KindOf(c) != kind)
            {
                break;
            }

            pos += cs;
        }

        return new Extent(offset, Math.Min(pos, end) - offset, kind);
    }

    private ExtentKind KindOf(long chunk) => File.GetEntry(chunk).Kind switch
    {
        ChunkKind.Data => ExtentKind.Data,
        ChunkKind.Zero => ExtentKind.Zero,
        _ => File.IsFull ? ExtentKind.Zero : ExtentKind.Unallocated,
    };

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        int cs = File.ChunkSize;
        while (!buffer.IsEmpty)
        {
            long chunk = offset / cs;
            int inChunk = (int)(offset - (chunk * cs));
            int chunkLength = File.ChunkLength(chunk);
            int n = Math.Min(buffer.Length, chunkLength - inChunk);
            var piece = buffer[..n];
            if (File.GetEntry(chunk).Kind != ChunkKind.Data)
            {
                piece.Clear();
            }
            else if (n == chunkLength)
            {
                File.ReadChunk(chunk, piece);
            }
            else if (!File.TryReadChunkPart(chunk, inChunk, piece))
            {
                byte[] tmp = ArrayPool<byte>.Shared.Rent(chunkLength);
                try
                {
                    File.ReadChunk(chunk, tmp.AsSpan(0, chunkLength));
                    tmp.AsSpan(inChunk, n).CopyTo(piece);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(tmp);
                }
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override bool ReadsPartCheaply(long offset, int length)
    {
        AssertRange(offset, length);
        long chunk = offset / File.ChunkSize;
        if ((offset + length - 1) / File.ChunkSize != chunk)
        {
            return false;
        }

        return offset == chunk * File.ChunkSize && length == File.ChunkLength(chunk)
            ? File.ReadsWholeChunkAsCopy(chunk)
            : File.CanReadChunkPart(chunk);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsFile)
        {
            File.Dispose();
        }
    }
}
