using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - An IFileTree presented as a read-only exFAT volume whose bytes are synthesized for whatever range a read asks
//   for: boot regions, FAT, allocation bitmap, up-case table and directories are computed, file clusters are read
//   from the tree. Layout (ExFatGeometry): every directory and non-empty file gets ONE contiguous run (ClusterRuns,
//   tree order, root first), so the bitmap is a used prefix and a FAT entry is "next cluster" or end-of-chain. The
//   FAT holds those chains for every run (the root, bitmap and up-case table need them; files and directories also
//   say NoFatChain, and drivers that ignore the flag still find the same clusters).
// - Lazy and bounded: construction makes one pass over the tree (each directory's listing is built for its size and
//   the mapping report, then dropped) and keeps only ClusterRuns (8 bytes per entry). A read of a directory cluster
//   rebuilds that directory's listing (names mapped, entry-set offsets) and generates only the entries the read
//   touches; recent listings are cached by size (DirectoryCache, 16 MiB of entries), so a sequential scan of a
//   directory does not rebuild it per cluster and a few huge directories cannot hold gigabytes.
// - Deterministic: the bytes depend only on the tree and the options (serial from SerialSeed, no clock, no
//   randomness), so the same backup point gives the same volume across restarts.
// - Symlinks and special files cannot be stored: they are left out and reported in Mappings with renamed entries.
// - The free tail of the heap reads as zeros and GetExtent reports it Zero (a VHDX above leaves it unallocated);
//   everything before it is Data. Nothing is writable: guest writes belong to the differencing layer above.
// - Thread-safe: immutable state plus a listing cache under a lock; concurrent reads are as safe as the tree's.

/// <summary>A read-only exFAT volume synthesized on demand from an <see cref="IFileTree"/>.</summary>
public sealed class ExFatVolume : BlockSource
{
    private const long MaxDirectoryBytes = 256L * 1024 * 1024;
    private const long CachedListingBytes = 16L << 20; // by the bytes of entries they stand for

    private readonly IFileTree _tree;
    private readonly bool _ownsTree;
    private readonly ExFatOptions _options;
    private readonly ExFatGeometry _geometry;
    private readonly ClusterRuns _runs;
    private readonly byte[] _bootRegion;
    private readonly DirectoryCache<ExFatDirectoryListing> _listings = new(CachedListingBytes, l => l.UsedBytes);

    /// <summary>Lays out <paramref name="tree"/> as an exFAT volume; disposing the volume disposes the tree when <paramref name="ownsTree"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid (label, cluster size, free space).</exception>
    /// <exception cref="InvalidDataException">The tree does not fit exFAT (a directory over 256 MiB of entries, too many clusters).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    public ExFatVolume(IFileTree tree, ExFatOptions? options = null, bool ownsTree = false)
    {
        ArgumentNullException.ThrowIfNull(tree);
        options ??= new ExFatOptions();
        ValidateLabel(options.VolumeLabel);
        if (options.FreeBytes is < 0)
        {
            throw new ArgumentException($"free space {options.FreeBytes} is negative", nameof(options));
        }

        if (options.ClusterSize is { } requested && (requested < 512 || requested > 32 << 20 || (requested & (requested - 1)) != 0))
        {
            throw new ArgumentException($"cluster size {requested} is not a power of two between 512 bytes and 32 MiB", nameof(options));
        }

        _tree = tree;
        _ownsTree = ownsTree;
        _options = options;

        // One pass: directory sizes from their listings, the mapping report, file sizes.
        var bytes = new long[tree.Count];
        var mappings = new List<FileNameMapping>();
        long fileBytes = 0;
        for (int i = 0; i < tree.Count; i++)
        {
            var kind = tree.KindOf(i); // not GetEntry: a million entries must not decode a million names here
            if (kind == FileTreeEntryKind.Directory)
            {
                long used = ExFatDirectoryListing.Build(tree, i, mappings).UsedBytes;
                if (used > MaxDirectoryBytes)
                {
                    throw new InvalidDataException($"directory '/{FileTreePath.Of(tree, i)}': its {tree.GetEntry(i).ChildCount} entries need {used} bytes, more than exFAT's 256 MiB per directory");
                }

                bytes[i] = used;
            }
            else if (kind == FileTreeEntryKind.File)
            {
                long size = tree.SizeOf(i);
                bytes[i] = size;
                fileBytes = AddOrRefuse(fileBytes, size);
            }
        }

        Mappings = mappings;
        int clusterSize = options.ClusterSize ?? ChooseClusterSize(fileBytes, options.FreeBytes);
        long treeClusters = 0;
        var counts = bytes; // converted in place: bytes -> clusters
        for (int i = 0; i < counts.Length; i++)
        {
            bool directory = tree.KindOf(i) == FileTreeEntryKind.Directory;
            counts[i] = directory ? Math.Max(1, ExFatGeometry.Ceil(counts[i], clusterSize)) : ExFatGeometry.Ceil(counts[i], clusterSize);
            treeClusters = AddOrRefuse(treeClusters, counts[i]);
        }

        if (treeClusters > ExFatGeometry.MaxClusterCount)
        {
            throw new InvalidDataException($"the tree needs {treeClusters} clusters of {clusterSize} bytes, more than exFAT's {ExFatGeometry.MaxClusterCount}");
        }

        long free = options.FreeBytes ?? Math.Max(1L << 30, treeClusters / 4 * clusterSize);
        _geometry = new ExFatGeometry(clusterSize, treeClusters, ExFatGeometry.Ceil(free, clusterSize));
        _runs = new ClusterRuns(counts, _geometry.TreeCluster);
        uint serial = BinaryPrimitives.ReadUInt32LittleEndian(IdentityHash.HashData(options.SerialSeed.ToByteArray()));
        _bootRegion = ExFatBootRegion.Build(_geometry, _runs.StartOf(0), serial, _runs.EndCluster - 2);
        VolumeSerial = serial;
    }

    /// <inheritdoc/>
    public override long Length => _geometry.VolumeSectors * ExFatGeometry.SectorSize;

    /// <summary>Every entry stored under another name or left out (symlinks, special files), in tree order.</summary>
    public IReadOnlyList<FileNameMapping> Mappings { get; }

    /// <summary>Bytes per cluster.</summary>
    public int ClusterSize => _geometry.ClusterSize;

    /// <summary>The volume serial number (derived from <see cref="ExFatOptions.SerialSeed"/>).</summary>
    public uint VolumeSerial { get; }

    /// <summary>Byte offset where the free space (zeros to the end of the volume) begins.</summary>
    public long FreeSpaceOffset => _geometry.ClusterOffset(_runs.EndCluster);

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        CheckRange(this, offset, buffer.Length);
        long bootEnd = 2L * ExFatGeometry.BootRegionSectors * ExFatGeometry.SectorSize;
        long fatStart = _geometry.FatOffset * ExFatGeometry.SectorSize;
        long fatEnd = fatStart + (_geometry.FatLength * ExFatGeometry.SectorSize);
        long heapStart = _geometry.HeapOffset * ExFatGeometry.SectorSize;
        while (!buffer.IsEmpty)
        {
            int n;
            if (offset < bootEnd)
            {
                int at = (int)(offset % _bootRegion.Length);
                n = (int)Math.Min(buffer.Length, _bootRegion.Length - at);
                _bootRegion.AsSpan(at, n).CopyTo(buffer);
            }
            else if (offset < fatStart)
            {
                n = (int)Math.Min(buffer.Length, fatStart - offset);
                buffer[..n].Clear();
            }
            else if (offset < fatEnd)
            {
                n = (int)Math.Min(buffer.Length, fatEnd - offset);
                ReadFat(offset - fatStart, buffer[..n]);
            }
            else if (offset < heapStart)
            {
                n = (int)Math.Min(buffer.Length, heapStart - offset);
                buffer[..n].Clear();
            }
            else
            {
                n = ReadHeap(offset - heapStart, buffer);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        CheckRange(this, offset, 1);
        long end = Math.Min(Length, offset + maxLength);
        long free = FreeSpaceOffset;
        return offset < free
            ? new Extent(offset, Math.Min(end, free) - offset, ExtentKind.Data)
            : new Extent(offset, end - offset, ExtentKind.Zero);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsTree)
        {
            _tree.Dispose();
        }
    }

    private static void ValidateLabel(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        if (label.Length > 11 || label.Any(FatLongNames.IsForbidden))
        {
            throw new ArgumentException($"volume label '{label}': at most 11 characters, none of \" * / : < > ? \\ | or control characters", nameof(label));
        }
    }

    /// <summary>
    /// <paramref name="a"/> + <paramref name="b"/> (both non-negative), refused as too large where it overflows: sizes come from
    /// a catalog, and files may share content (hard links), so their sum is not bounded by what the backup holds.
    /// </summary>
    private static long AddOrRefuse(long a, long b) =>
        a > long.MaxValue - b ? throw new InvalidDataException($"the tree's sizes add up to more than {long.MaxValue} bytes: too large for exFAT") : a + b;

    private static int ChooseClusterSize(long fileBytes, long? freeBytes)
    {
        long total = AddOrRefuse(fileBytes, freeBytes ?? Math.Max(1L << 30, fileBytes / 4));
        return total <= 256L << 20 ? 4096 : total <= 32L << 30 ? 32768 : 131072;
    }

    /// <summary>The FAT entry of <paramref name="cluster"/>: chains for every run, 0 for free clusters.</summary>
    /// <remarks><paramref name="runEnd"/> caches the end of the last run looked up; callers go up in cluster order.</remarks>
    private uint FatEntry(long cluster, ref long runEnd)
    {
        if (cluster < 2)
        {
            return cluster == 0 ? 0xFFFFFFF8u : 0xFFFFFFFFu;
        }

        if (cluster >= _runs.EndCluster)
        {
            return 0;
        }

        if (cluster >= runEnd)
        {
            runEnd = RunEnd(cluster);
        }

        return cluster + 1 < runEnd ? (uint)(cluster + 1) : 0xFFFFFFFFu;
    }

    /// <summary>The first cluster after the run (bitmap, up-case table or tree entry) holding <paramref name="cluster"/>.</summary>
    private long RunEnd(long cluster)
    {
        if (cluster < _geometry.UpcaseCluster)
        {
            return _geometry.UpcaseCluster;
        }

        if (cluster < _geometry.TreeCluster)
        {
            return _geometry.TreeCluster;
        }

        int entry = _runs.EntryAt(cluster);
        return _runs.StartOf(entry) + _runs.CountOf(entry);
    }

    private void ReadFat(long offset, Span<byte> buffer)
    {
        Span<byte> entry = stackalloc byte[4];
        long runEnd = 0;
        long first = offset / 4, last = (offset + buffer.Length - 1) / 4;
        for (long c = first; c <= last; c++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(entry, FatEntry(c, ref runEnd));
            long at = c * 4;
            int from = (int)Math.Max(0, offset - at), to = (int)Math.Min(4, offset + buffer.Length - at);
            entry[from..to].CopyTo(buffer[(int)(at + from - offset)..]);
        }
    }

    /// <summary>Fills the start of <paramref name="buffer"/> from heap byte <paramref name="offset"/>; returns how many bytes it did (at least 1).</summary>
    private int ReadHeap(long offset, Span<byte> buffer)
    {
        int cs = _geometry.ClusterSize;
        long cluster = 2 + (offset / cs);
        long within = offset % cs;
        if (cluster < _geometry.UpcaseCluster)
        {
            int n = (int)Math.Min(buffer.Length, cs - within);
            ReadBitmap(((cluster - 2) * cs) + within, buffer[..n]);
            return n;
        }

        if (cluster < _geometry.TreeCluster)
        {
            int n = (int)Math.Min(buffer.Length, cs - within);
            long at = ((cluster - _geometry.UpcaseCluster) * cs) + within;
            CopyOrZero(ExFatUpcaseTable.Bytes, at, buffer[..n]);
            return n;
        }

        int entryIndex = _runs.EntryAt(cluster);
        if (entryIndex < 0)
        {
            buffer.Clear();
            return buffer.Length;
        }

        var entry = _tree.GetEntry(entryIndex);
        long runOffset = ((cluster - _runs.StartOf(entryIndex)) * cs) + within;
        long runBytes = _runs.CountOf(entryIndex) * cs;
        if (entry.Kind == FileTreeEntryKind.File)
        {
            int n = (int)Math.Min(buffer.Length, runBytes - runOffset);
            int data = (int)Math.Clamp(entry.Size - runOffset, 0, n);
            if (data > 0)
            {
                _tree.ReadFile(entryIndex, runOffset, buffer[..data]);
            }

            buffer[data..n].Clear();
            return n;
        }

        int m = (int)Math.Min(buffer.Length, cs - within);
        ReadDirectory(Listing(entryIndex), runOffset, buffer[..m]);
        return m;
    }

    private void ReadBitmap(long offset, Span<byte> buffer)
    {
        // Bit k of the bitmap is cluster k + 2; clusters 2 .. EndCluster - 1 are used.
        long used = _runs.EndCluster - 2;
        for (int i = 0; i < buffer.Length; i++)
        {
            long firstBit = (offset + i) * 8;
            long set = Math.Clamp(used - firstBit, 0, 8);
            buffer[i] = (byte)((1 << (int)set) - 1);
        }
    }

    private static void CopyOrZero(ReadOnlySpan<byte> source, long offset, Span<byte> buffer)
    {
        int n = (int)Math.Clamp(source.Length - offset, 0, buffer.Length);
        if (n > 0)
        {
            source.Slice((int)offset, n).CopyTo(buffer);
        }

        buffer[n..].Clear();
    }

    private void ReadDirectory(ExFatDirectoryListing listing, long offset, Span<byte> buffer)
    {
        buffer.Clear();
        long end = offset + buffer.Length;
        Span<byte> set = stackalloc byte[ExFatDirectoryEntries.MaxSetSize];
        if (listing.Directory == 0 && offset < ExFatDirectoryListing.RootHeaderBytes)
        {
            const int E = ExFatDirectoryEntries.EntrySize;
            ExFatDirectoryEntries.WriteVolumeLabel(set, _options.VolumeLabel);
            ExFatDirectoryEntries.WriteBitmap(set[E..], 2, (ulong)_geometry.BitmapBytes);
            ExFatDirectoryEntries.WriteUpcase(set[(2 * E)..], ExFatUpcaseTable.Checksum, (uint)_geometry.UpcaseCluster, (ulong)ExFatUpcaseTable.Length);
            CopyOverlap(set[..ExFatDirectoryListing.RootHeaderBytes], 0, offset, buffer);
        }

        for (int i = listing.ChildAt(offset); i < listing.Children.Length && listing.Offsets[i] < end; i++)
        {
            int child = listing.Children[i];
            var e = _tree.GetEntry(child);
            long clusters = _runs.CountOf(child);
            uint first = clusters > 0 ? (uint)_runs.StartOf(child) : 0;
            ulong length = e.Kind == FileTreeEntryKind.Directory ? (ulong)(clusters * _geometry.ClusterSize) : (ulong)e.Size;
            int size = ExFatDirectoryEntries.WriteSet(set, e, listing.Names[i], first, length);
            CopyOverlap(set[..size], listing.Offsets[i], offset, buffer);
        }
    }

    /// <summary>Copies the part of <paramref name="source"/> (at <paramref name="sourceOffset"/>) that overlaps <paramref name="buffer"/> (at <paramref name="offset"/>).</summary>
    private static void CopyOverlap(ReadOnlySpan<byte> source, long sourceOffset, long offset, Span<byte> buffer)
    {
        long from = Math.Max(sourceOffset, offset), to = Math.Min(sourceOffset + source.Length, offset + buffer.Length);
        if (from < to)
        {
            source.Slice((int)(from - sourceOffset), (int)(to - from)).CopyTo(buffer[(int)(from - offset)..]);
        }
    }

    private ExFatDirectoryListing Listing(int directory) => _listings.Get(directory, d => ExFatDirectoryListing.Build(_tree, d, null));
}
