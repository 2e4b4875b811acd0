using System.Buffers;
using System.Buffers.Binary;
using BackupFuse.Core;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - Writes a standalone qcow2 version 3 image of a block source, our own code (no qemu-img): 64 KiB clusters, no
//   backing file, no compression, no encryption, no snapshots, 16-bit refcounts (refcount_order 4), no header
//   extensions (the end marker only). Every QEMU tool reads it (qemu-img check is clean; compare equals the raw disk).
// - Only clusters holding a non-zero byte are stored: extents that GetExtent reports as Zero or Unallocated are never
//   read, and clusters of Data extents that read as all zeros are left unallocated too (they read as zeros: there is
//   no backing file). The last cluster of a disk whose size is not a multiple of 64 KiB is stored padded with zeros.
// - The size in the header is the disk's, rounded up to whole 512-byte sectors, as qemu-img create does: QEMU reads a
//   qcow2's size in sectors and would drop a partial last sector (and its bytes) otherwise; the padding reads as zeros.
// - Layout, in file order: header (cluster 0), L1 table, the L2 tables of every 512 MiB range that has a Data
//   extent (reserved before any data, found by a first pass over the extents: metadata only, no data read), the data
//   clusters in disk order, then the refcount blocks and the refcount table (their size depends on the file's, so they
//   come last). Each L2 table is filled while its range is copied and written once when the copy leaves the range, so
//   memory stays at one L2 table and one copy buffer whatever the disk size. Every cluster is used exactly once, so
//   every L1/L2 entry carries QCOW_OFLAG_COPIED (refcount 1), as qemu-img check expects.
// - The header is written last: an interrupted write never leaves a file that looks like a complete image (the
//   caller writes to OUT.partial and renames it only on success).
// - The output must be a seekable file (qcow2 metadata is written in place); a pipe is refused by the caller.
// - Not thread-safe; one call writes one file.

/// <summary>Writes a block source as a standalone qcow2 v3 image (see design notes).</summary>
public static class Qcow2Writer
{
    /// <summary>log2 of the cluster size.</summary>
    public const int ClusterBits = 16;

    /// <summary>Cluster size: 64 KiB, QEMU's default.</summary>
    public const int ClusterSize = 1 << ClusterBits;

    /// <summary>Why "-" (standard output) is refused as a qcow2 target.</summary>
    public const string StandardOutputRefused = "--format qcow2 cannot be written to standard output (its tables are written in place); give a file name, or use --format raw for a pipe";

    private const uint Magic = 0x514649FB; // "QFI\xfb"
    private const int HeaderLength = 104;
    private const int RefcountOrder = 4; // 16-bit refcounts
    private const int L2Entries = ClusterSize / 8;
    private const long L2Coverage = (long)L2Entries * ClusterSize; // 512 MiB of disk per L2 table
    private const int RefcountsPerBlock = ClusterSize / 2;
    private const ulong Copied = 1UL << 63; // QCOW_OFLAG_COPIED: refcount is exactly 1
    private const int BatchClusters = 64; // 4 MiB read per step

    /// <summary>
    /// Writes <paramref name="source"/> as a qcow2 file at <paramref name="path"/> (which must not exist; written to
    /// PATH.partial and renamed when complete). Standard output ("-") is refused: qcow2 is written in place.
    /// </summary>
    public static void WriteFile(IBlockSource source, string path, ProgressBar? bar, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == "-")
        {
            throw new CliError(StandardOutputRefused);
        }

        NewOutputFile.Write(path, FileAccess.ReadWrite, handle => Write(source, handle, bar, token));
    }

    /// <summary>
    /// Writes <paramref name="source"/> as qcow2 into <paramref name="file"/> (empty, seekable, open for writing);
    /// returns the file's length.
    /// </summary>
    public static long Write(IBlockSource source, SafeFileHandle file, ProgressBar? bar, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(file);
        long size = source.Length;
        long virtualSize = (size + 511) & ~511L; // QEMU counts whole sectors: it would cut a partial one off
        long l1Size = (virtualSize + L2Coverage - 1) / L2Coverage;
        long l1Clusters = Math.Max(1, ((l1Size * 8) + ClusterSize - 1) / ClusterSize);

        // Pass 1: which L2 ranges hold data (from the extents only), and where their tables go.
        var l2Ranges = DataRanges(source, token);
        long nextCluster = 1 + l1Clusters;
        var l2Cluster = new Dictionary<long, long>(l2Ranges.Count);
        foreach (long range in l2Ranges)
        {
            l2Cluster[range] = nextCluster++;
        }

        // Pass 2: the data clusters, appended in disk order; each L2 table written when its range is done.
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BatchClusters * ClusterSize);
        byte[] l2Bytes = new byte[ClusterSize];
        try
        {
            long currentRange = -1;
            long lastCluster = -1; // the highest disk cluster already stored (two Data extents may share one)
            foreach (var extent in Extents(source, token))
            {
                if (extent.Kind == ExtentKind.Data)
                {
                    long first = Math.Max(extent.Offset / ClusterSize, lastCluster + 1);
                    long end = (extent.End + ClusterSize - 1) / ClusterSize;
                    for (long c = first, count; c < end; c += count)
                    {
                        token.ThrowIfCancellationRequested();
                        count = Math.Min(Math.Min(BatchClusters, end - c), ((c / L2Entries) + 1) * L2Entries - c); // one L2 range per batch
                        long range = c / L2Entries;
                        if (range != currentRange)
                        {
                            FlushL2(file, l2Cluster, currentRange, l2Bytes);
                            currentRange = range;
                            Array.Clear(l2Bytes);
                        }

                        nextCluster = CopyBatch(source, file, buffer, c, (int)count, size, nextCluster, l2Bytes);
                        bar?.Report(Math.Min(size, (c + count) * ClusterSize), size);
                    }

                    lastCluster = Math.Max(lastCluster, end - 1);
                }
            }

            FlushL2(file, l2Cluster, currentRange, l2Bytes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        // The L1 table: every reserved L2 table (one that ended up empty is still valid and referenced once).
        WriteL1(file, l2Cluster, l1Size);

        // Refcounts for every cluster up to the end, their own blocks and table included.
        long used = nextCluster;
        long blocks = 0;
        long tableClusters = 0;
        while (true)
        {
            long total = used + blocks + tableClusters;
            long needBlocks = (total + RefcountsPerBlock - 1) / RefcountsPerBlock;
            long needTable = Math.Max(1, ((needBlocks * 8) + ClusterSize - 1) / ClusterSize);
            if (needBlocks == blocks && needTable == tableClusters)
            {
                break;
            }

            blocks = needBlocks;
            tableClusters = needTable;
        }

        long totalClusters = used + blocks + tableClusters;
        long tableOffset = (used + blocks) * ClusterSize;
        WriteRefcounts(file, used, blocks, tableClusters, totalClusters);
        WriteHeader(file, virtualSize, l1Size, tableOffset, tableClusters);
        long length = totalClusters * ClusterSize;
        RandomAccess.SetLength(file, length);
        return length;
    }

    /// <summary>The L2 range indexes (512 MiB each) holding at least one Data extent, in order.</summary>
    private static List<long> DataRanges(IBlockSource source, CancellationToken token)
    {
        var ranges = new List<long>();
        foreach (var extent in Extents(source, token))
        {
            if (extent.Kind == ExtentKind.Data)
            {
                for (long r = extent.Offset / L2Coverage; r <= (extent.End - 1) / L2Coverage; r++)
                {
                    if (ranges.Count == 0 || ranges[^1] < r)
                    {
                        ranges.Add(r);
                    }
                }
            }
        }

        return ranges;
    }

    /// <summary>The extents of the whole of <paramref name="source"/>, in order; an empty one is a broken source (InvalidDataException).</summary>
    private static IEnumerable<Extent> Extents(IBlockSource source, CancellationToken token)
    {
        long size = source.Length;
        long pos = 0;
        while (pos < size)
        {
            token.ThrowIfCancellationRequested();
            var extent = source.GetExtent(pos, size - pos);
            if (extent.Length <= 0)
            {
                throw new InvalidDataException($"{source.GetType().Name}.GetExtent returned an empty extent at {pos}");
            }

            yield return extent;
            pos = extent.End;
        }
    }

    /// <summary>
    /// Reads disk clusters [<paramref name="first"/>, +<paramref name="count"/>), stores the non-zero ones from cluster
    /// <paramref name="nextCluster"/> on (one write: stored clusters are contiguous in the file), fills their L2 entries;
    /// returns the next free cluster.
    /// </summary>
    private static long CopyBatch(IBlockSource source, SafeFileHandle file, byte[] buffer, long first, int count, long size, long nextCluster, byte[] l2Bytes)
    {
        long offset = first * ClusterSize;
        int bytes = (int)Math.Min((long)count * ClusterSize, size - offset);
        var span = buffer.AsSpan(0, count * ClusterSize);
        source.Read(offset, span[..bytes]);
        span[bytes..].Clear(); // the tail of the last cluster of a disk that ends mid-cluster

        int stored = 0;
        for (int i = 0; i < count; i++)
        {
            var cluster = span.Slice(i * ClusterSize, ClusterSize);
            if (cluster.IndexOfAnyExcept((byte)0) < 0)
            {
                continue;
            }

            if (stored != i)
            {
                cluster.CopyTo(span.Slice(stored * ClusterSize, ClusterSize));
            }

            long fileOffset = (nextCluster + stored) * ClusterSize;
            int entry = (int)((first + i) % L2Entries);
            BinaryPrimitives.WriteUInt64BigEndian(l2Bytes.AsSpan(entry * 8), (ulong)fileOffset | Copied);
            stored++;
        }

        if (stored > 0)
        {
            RandomAccess.Write(file, span[..(stored * ClusterSize)], nextCluster * ClusterSize);
        }

        return nextCluster + stored;
    }

    private static void FlushL2(SafeFileHandle file, Dictionary<long, long> l2Cluster, long range, byte[] l2Bytes)
    {
        if (range >= 0)
        {
            RandomAccess.Write(file, l2Bytes, l2Cluster[range] * ClusterSize);
        }
    }

    private static void WriteL1(SafeFileHandle file, Dictionary<long, long> l2Cluster, long l1Size)
    {
        // Written in pieces of at most 1 MiB (131072 entries, 64 TiB of disk).
        const int PieceEntries = 1 << 17;
        byte[] piece = new byte[(int)Math.Min(l1Size, PieceEntries) * 8];
        for (long start = 0; start < l1Size; start += PieceEntries)
        {
            int n = (int)Math.Min(PieceEntries, l1Size - start);
            Array.Clear(piece);
            for (int i = 0; i < n; i++)
            {
                if (l2Cluster.TryGetValue(start + i, out long cluster))
                {
                    BinaryPrimitives.WriteUInt64BigEndian(piece.AsSpan(i * 8), ((ulong)cluster * ClusterSize) | Copied);
                }
            }

            RandomAccess.Write(file, piece.AsSpan(0, n * 8), ClusterSize + (start * 8));
        }
    }

    private static void WriteRefcounts(SafeFileHandle file, long used, long blocks, long tableClusters, long totalClusters)
    {
        byte[] block = new byte[ClusterSize];
        byte[] table = new byte[tableClusters * ClusterSize];
        for (long b = 0; b < blocks; b++)
        {
            Array.Clear(block);
            long firstCluster = b * RefcountsPerBlock;
            long n = Math.Min(RefcountsPerBlock, totalClusters - firstCluster);
            for (int i = 0; i < n; i++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(i * 2), 1);
            }

            long blockCluster = used + b;
            RandomAccess.Write(file, block, blockCluster * ClusterSize);
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(b * 8)), (ulong)blockCluster * ClusterSize);
        }

        RandomAccess.Write(file, table, (used + blocks) * ClusterSize);
    }

    private static void WriteHeader(SafeFileHandle file, long size, long l1Size, long refcountTableOffset, long refcountTableClusters)
    {
        byte[] h = new byte[HeaderLength + 8]; // + the header extension end marker (type 0, length 0)
        var s = h.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(s[0..], Magic);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], 3);                        // version
        BinaryPrimitives.WriteUInt64BigEndian(s[8..], 0);                        // backing_file_offset: none
        BinaryPrimitives.WriteUInt32BigEndian(s[16..], 0);                       // backing_file_size
        BinaryPrimitives.WriteUInt32BigEndian(s[20..], ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(s[24..], (ulong)size);
        BinaryPrimitives.WriteUInt32BigEndian(s[32..], 0);                       // crypt_method: none
        BinaryPrimitives.WriteUInt32BigEndian(s[36..], (uint)l1Size);
        BinaryPrimitives.WriteUInt64BigEndian(s[40..], ClusterSize);             // l1_table_offset: cluster 1
        BinaryPrimitives.WriteUInt64BigEndian(s[48..], (ulong)refcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[56..], (uint)refcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(s[60..], 0);                       // nb_snapshots
        BinaryPrimitives.WriteUInt64BigEndian(s[64..], 0);                       // snapshots_offset
        BinaryPrimitives.WriteUInt64BigEndian(s[72..], 0);                       // incompatible_features
        BinaryPrimitives.WriteUInt64BigEndian(s[80..], 0);                       // compatible_features
        BinaryPrimitives.WriteUInt64BigEndian(s[88..], 0);                       // autoclear_features
        BinaryPrimitives.WriteUInt32BigEndian(s[96..], RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(s[100..], HeaderLength);
        RandomAccess.Write(file, h, 0);
    }
}
