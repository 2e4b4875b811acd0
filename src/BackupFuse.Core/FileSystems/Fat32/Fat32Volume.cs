using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.Fat32;

// Design notes:
// - A read-only FAT32 volume synthesized from an IFileTree: nothing of it is stored but the reserved region (a few
//   KiB), one ClusterRuns (8 bytes per entry) and the list of renamed/omitted names. Every entry that needs clusters
//   (each directory, each non-empty file) has one contiguous run in tree order from cluster 2 (the root is entry 0,
//   so cluster 2 is the root directory). A FAT entry is computed from the runs (next = c + 1, last = EOC, beyond the
//   runs free = 0); a directory cluster from the directory's children (built whole, at most 2 MiB, kept in a
//   byte-bounded LRU); a file cluster from IFileTree.ReadFile, its slack as zeros; free clusters as zeros.
//   GetExtent reports the free clusters and the FAT entries of free clusters as Zero, everything else as Data.
// - Construction is one pass over the tree: per directory the stored long names (FatLongNames.Map over the children
//   FAT can hold), the entry count (8.3 entry + LFN entries, "." and ".." or the root's label entry) and the renames;
//   per file its size (files over 4 GiB - 1 are collected and refused together, FileTooLargeForFat32Exception).
//   Short names are not stored: whether a name needs LFN entries depends on the name alone (FatShortNames), so the
//   sizes are known without them; they are generated with the directory's bytes on demand.
// - Symlinks and devices/FIFOs/sockets cannot be represented: left out, and listed in Mappings with the renames.
// - Deterministic: the same tree and options give the same bytes (serial from the seed, times from the tree).
// - Thread-safe: immutable apart from the directory cache (locked); the tree must allow concurrent reads (IFileTree
//   contract). Owns the tree when asked to. Not done: writes (the differencing layer above takes them), FAT12/16,
//   sector sizes other than 512, a bootable boot sector, Windows' reserved device names (CON, NUL, ...: FatLongNames
//   keeps them), local-time stamps (we write UTC; Windows shows FAT times as local time).

/// <summary>A FAT32 volume whose bytes are synthesized on demand from a <see cref="IFileTree"/>.</summary>
public sealed class Fat32Volume : BlockSource
{
    /// <summary>Most 32-byte entries a FAT directory may have (fatgen103: 65536, i.e. 2 MiB).</summary>
    public const int MaxDirectoryEntries = 65536;

    /// <summary>Largest file FAT32 can store.</summary>
    public const long MaxFileSize = uint.MaxValue;

    private const long GiB = 1L << 30;
    private const long DirectoryCacheBytes = 16L << 20;
    private const string NoLabel = "NO NAME    ";

    private readonly IFileTree _tree;
    private readonly bool _ownsTree;
    private readonly ClusterRuns _runs;
    private readonly byte[] _reserved;
    private readonly string? _rootLabel; // the label entry in the root directory, null when the volume has none
    private readonly DirectoryCache<byte[]> _directories = new(DirectoryCacheBytes, b => b.Length);

    /// <summary>The volume of <paramref name="tree"/>.</summary>
    /// <param name="tree">The files; read on demand, so it must stay usable while the volume is.</param>
    /// <param name="options">Layout options; null for the defaults.</param>
    /// <param name="ownsTree">Whether disposing the volume disposes the tree (when the constructor throws, the caller still owns it).</param>
    /// <exception cref="FileTooLargeForFat32Exception">Files larger than 4 GiB - 1 byte (all of them are named).</exception>
    /// <exception cref="InvalidDataException">A directory with more entries than FAT allows, or a tree too large for FAT32.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    public Fat32Volume(IFileTree tree, Fat32VolumeOptions? options = null, bool ownsTree = true)
    {
        ArgumentNullException.ThrowIfNull(tree);
        options ??= new Fat32VolumeOptions();
        if (options.FreeSpaceHeadroom < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "the free-space headroom cannot be negative");
        }

        _tree = tree;
        string label = NormalizeLabel(options.VolumeLabel);
        _rootLabel = label == NoLabel ? null : label;

        // One pass: bytes each entry needs (directory entries, file content), renames, refusals.
        var needed = new long[tree.Count];
        var mappings = new List<FileNameMapping>();
        var tooLarge = new List<string>();
        var directories = new System.Collections.BitArray(needed.Length);
        long raw = 0;
        for (int i = 0; i < needed.Length; i++)
        {
            var kind = tree.KindOf(i); // not GetEntry: a million entries must not decode a million names here
            if (kind == FileTreeEntryKind.File)
            {
                long size = tree.SizeOf(i);
                if (size > MaxFileSize)
                {
                    tooLarge.Add(PathOf(i));
                }

                needed[i] = size;
            }
            else if (kind == FileTreeEntryKind.Directory)
            {
                directories[i] = true;
                var (kept, mapped, changed) = StorableChildren.Of(tree, i, "FAT", mappings);
                long slots = i == 0 ? (_rootLabel != null ? 1 : 0) : 2;
                for (int k = 0; k < kept.Count; k++)
                {
                    slots += SlotsOf(mapped[k]);
                    if (changed[k])
                    {
                        mappings.Add(new FileNameMapping(kept[k], PathOf(kept[k]), mapped[k], ReasonFor(tree.GetEntry(kept[k]).Name)));
                    }
                }

                if (slots > MaxDirectoryEntries)
                {
                    throw new InvalidDataException(
                        $"directory '{(i == 0 ? "/" : PathOf(i))}' needs {slots} FAT directory entries (long names included); FAT allows {MaxDirectoryEntries}");
                }

                needed[i] = slots * FatDirectoryEntry.Size;
            }

            raw += needed[i];
        }

        if (tooLarge.Count > 0)
        {
            throw new FileTooLargeForFat32Exception(tooLarge);
        }

        int clusterSize = options.ClusterSize ?? Fat32Geometry.ClusterSizeFor(raw + (options.FreeSpaceHeadroom ?? Math.Max(GiB, raw / 4)));
        for (int i = 0; i < needed.Length; i++)
        {
            long clusters = (needed[i] + clusterSize - 1) / clusterSize;
            needed[i] = directories[i] ? Math.Max(1, clusters) : clusters;
        }

        _runs = new ClusterRuns(needed, Fat32BootRegion.RootCluster);
        long used = _runs.EndCluster - _runs.FirstCluster;
        long headroomClusters = ((options.FreeSpaceHeadroom ?? Math.Max(GiB, used * clusterSize / 4)) + clusterSize - 1) / clusterSize;
        if (options.FreeSpaceHeadroom == null)
        {
            // The default headroom shrinks to what still fits a FAT32 volume; an explicit one does not.
            headroomClusters = Math.Clamp(Fat32Geometry.MaxClustersFor(clusterSize) - used, 0, headroomClusters);
        }

        Geometry = Fat32Geometry.Create(clusterSize, used + headroomClusters);
        long free = Geometry.ClusterCount - used;
        uint firstFree = free > 0 ? (uint)_runs.EndCluster : uint.MaxValue;
        _reserved = Fat32BootRegion.Build(Geometry, label, SerialFor(options.Seed), free, firstFree, options.HiddenSectors);
        mappings.Sort((a, b) => a.Entry.CompareTo(b.Entry));
        Mappings = mappings;
        _ownsTree = ownsTree;
    }

    /// <summary>The layout (cluster size, cluster count, where the FATs and the data region are).</summary>
    public Fat32Geometry Geometry { get; }

    /// <summary>Every entry stored under another name or left out, in tree order.</summary>
    public IReadOnlyList<FileNameMapping> Mappings { get; }

    /// <summary>Clusters that hold directories or file data.</summary>
    public long UsedClusters => _runs.EndCluster - _runs.FirstCluster;

    /// <inheritdoc/>
    public override long Length => Geometry.Length;

    /// <inheritdoc/>
    public override int BlockSize => Fat32Geometry.SectorSize;

    /// <summary>The first cluster of entry <paramref name="entry"/> (0 when it has no clusters or is left out).</summary>
    public uint FirstClusterOf(int entry) => _runs.CountOf(entry) > 0 ? (uint)_runs.StartOf(entry) : 0;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        var g = Geometry;
        while (!buffer.IsEmpty)
        {
            int n;
            if (offset < g.FatOffset)
            {
                n = (int)Math.Min(buffer.Length, g.FatOffset - offset);
                _reserved.AsSpan((int)offset, n).CopyTo(buffer);
            }
            else if (offset < g.DataOffset)
            {
                long inFat = (offset - g.FatOffset) % g.FatBytes;
                n = (int)Math.Min(buffer.Length, g.FatBytes - inFat);
                ReadFat(inFat, buffer[..n]);
            }
            else
            {
                n = ReadData(offset, buffer);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var g = Geometry;
        long end = Math.Min(offset + maxLength, Length);
        if (offset >= g.FatOffset && offset < g.DataOffset)
        {
            // Each FAT is Data up to the entry of the first free cluster, then zeros (free entries) to its end.
            long fat = g.FatOffset + ((offset - g.FatOffset) / g.FatBytes * g.FatBytes);
            long zerosFrom = fat + (_runs.EndCluster * 4);
            return offset < zerosFrom
                ? new Extent(offset, Math.Min(end, zerosFrom) - offset, ExtentKind.Data)
                : new Extent(offset, Math.Min(end, fat + g.FatBytes) - offset, ExtentKind.Zero);
        }

        long freeStart = g.ClusterOffset(_runs.EndCluster);
        long dataEnd = offset < g.FatOffset ? g.FatOffset : freeStart;
        return offset < dataEnd
            ? new Extent(offset, Math.Min(end, dataEnd) - offset, ExtentKind.Data)
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

    private static long SlotsOf(string storedName) =>
        1 + (FatShortNames.NeedsLongName(storedName) ? FatDirectoryEntry.LongEntryCount(storedName) : 0);

    private static string ReasonFor(string original)
    {
        if (original.Any(FatLongNames.IsForbidden))
        {
            return "forbidden character";
        }

        if (original.Length > FatLongNames.MaxLength)
        {
            return "longer than 255 UTF-16 units";
        }

        return original[^1] is '.' or ' ' ? "trailing dot or space" : "case collision";
    }

    private static string NormalizeLabel(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        string upper = FrozenUpperCase.ToUpper(label);
        if (upper.Length > 11 || !upper.All(c => c == ' ' || FatShortNames.IsShortChar(c)) || upper.StartsWith(' '))
        {
            throw new ArgumentException($"volume label '{label}': up to 11 characters of A-Z 0-9 $%'-_@~`!(){{}}^#& and inner spaces", nameof(label));
        }

        return upper.Trim().Length == 0 ? NoLabel : upper.PadRight(11);
    }

    private static uint SerialFor(string seed)
    {
        ArgumentNullException.ThrowIfNull(seed);
        var hash = IdentityHash.HashData(Encoding.UTF8.GetBytes("BackupFuse FAT32 volume serial\n" + seed));
        return BinaryPrimitives.ReadUInt32LittleEndian(hash);
    }

    private string PathOf(int entry) => FileTreePath.Of(_tree, entry);

    /// <summary>Fills <paramref name="dest"/> with the FAT bytes at <paramref name="at"/> (offset within one FAT).</summary>
    private void ReadFat(long at, Span<byte> dest)
    {
        Span<byte> entry = stackalloc byte[4];
        long cluster = at / 4;
        int skip = (int)(at % 4);
        long runEnd = -1;
        while (!dest.IsEmpty)
        {
            uint value;
            if (cluster == 0)
            {
                value = 0x0FFFFF00u | Fat32BootRegion.Media;
            }
            else if (cluster == 1)
            {
                value = 0x0FFFFFFF; // end of chain; the clean-shutdown and no-error bits set
            }
            else if (cluster >= _runs.EndCluster)
            {
                value = 0;
            }
            else
            {
                if (cluster >= runEnd)
                {
                    int owner = _runs.EntryAt(cluster);
                    runEnd = _runs.StartOf(owner) + _runs.CountOf(owner);
                }

                value = cluster == runEnd - 1 ? 0x0FFFFFFFu : (uint)(cluster + 1);
            }

            BinaryPrimitives.WriteUInt32LittleEndian(entry, value);
            int n = Math.Min(4 - skip, dest.Length);
            entry.Slice(skip, n).CopyTo(dest);
            dest = dest[n..];
            skip = 0;
            cluster++;
        }
    }

    /// <summary>Fills the start of <paramref name="buffer"/> from the data region at <paramref name="offset"/>; returns how many bytes.</summary>
    private int ReadData(long offset, Span<byte> buffer)
    {
        var g = Geometry;
        long cluster = 2 + ((offset - g.DataOffset) / g.ClusterSize);
        if (cluster >= _runs.EndCluster)
        {
            int free = (int)Math.Min(buffer.Length, Length - offset);
            buffer[..free].Clear();
            return free;
        }

        int owner = _runs.EntryAt(cluster);
        long start = g.ClusterOffset(_runs.StartOf(owner));
        long inEntry = offset - start;
        int n = (int)Math.Min(buffer.Length, (_runs.CountOf(owner) * g.ClusterSize) - inEntry);
        var part = buffer[..n];
        var e = _tree.GetEntry(owner);
        if (e.Kind == FileTreeEntryKind.Directory)
        {
            var bytes = _directories.Get(owner, BuildDirectory);
            int have = (int)Math.Clamp(bytes.Length - inEntry, 0, n);
            bytes.AsSpan((int)Math.Min(inEntry, bytes.Length), have).CopyTo(part);
            part[have..].Clear();
        }
        else
        {
            int have = (int)Math.Clamp(e.Size - inEntry, 0, n);
            if (have > 0)
            {
                _tree.ReadFile(owner, inEntry, part[..have]);
            }

            part[have..].Clear();
        }

        return n;
    }

    /// <summary>The entries of directory <paramref name="dir"/>: "." and ".." (or the root's label), then per child LFN entries + 8.3 entry.</summary>
    private byte[] BuildDirectory(int dir)
    {
        var e = _tree.GetEntry(dir);
        var (kept, mapped, _) = StorableChildren.Of(_tree, dir, "FAT", null);
        var shorts = FatShortNames.Assign(mapped);
        long slots = dir == 0 ? (_rootLabel != null ? 1 : 0) : 2;
        for (int k = 0; k < kept.Count; k++)
        {
            slots += SlotsOf(mapped[k]);
        }

        var bytes = new byte[slots * FatDirectoryEntry.Size];
        var at = bytes.AsSpan();
        if (dir == 0)
        {
            if (_rootLabel != null)
            {
                FatDirectoryEntry.WriteShort(at, _rootLabel, FatDirectoryEntry.VolumeId, 0, 0, e.ModifiedUnixNs, e.AccessedUnixNs);
                at = at[FatDirectoryEntry.Size..];
            }
        }
        else
        {
            byte attributes = AttributesOf(e);
            FatDirectoryEntry.WriteShort(at, ".          ", attributes, FirstClusterOf(dir), 0, e.ModifiedUnixNs, e.AccessedUnixNs);
            at = at[FatDirectoryEntry.Size..];
            var parent = _tree.GetEntry(e.Parent);
            uint parentCluster = e.Parent == 0 ? 0 : FirstClusterOf(e.Parent); // ".." of a root child points to 0
            FatDirectoryEntry.WriteShort(at, "..         ", AttributesOf(parent), parentCluster, 0, parent.ModifiedUnixNs, parent.AccessedUnixNs);
            at = at[FatDirectoryEntry.Size..];
        }

        for (int k = 0; k < kept.Count; k++)
        {
            var child = _tree.GetEntry(kept[k]);
            byte[] shortName = Encoding.ASCII.GetBytes(shorts[k]);
            if (FatShortNames.NeedsLongName(mapped[k]))
            {
                int longEntries = FatDirectoryEntry.LongEntryCount(mapped[k]);
                FatDirectoryEntry.WriteLong(at, mapped[k], FatShortNames.Checksum(shortName));
                at = at[(longEntries * FatDirectoryEntry.Size)..];
            }

            uint size = child.Kind == FileTreeEntryKind.File ? (uint)child.Size : 0;
            FatDirectoryEntry.WriteShort(at, shorts[k], AttributesOf(child), FirstClusterOf(kept[k]), size, child.ModifiedUnixNs, child.AccessedUnixNs);
            at = at[FatDirectoryEntry.Size..];
        }

        return bytes;
    }

    /// <summary>Directory bit, archive on files, read-only when the owner has no write permission.</summary>
    private static byte AttributesOf(FileTreeEntry e)
    {
        byte a = e.Kind == FileTreeEntryKind.Directory ? FatDirectoryEntry.Directory : FatDirectoryEntry.Archive;
        if ((e.Mode & 0x80) == 0)
        {
            a |= FatDirectoryEntry.ReadOnly;
        }

        return a;
    }
}
