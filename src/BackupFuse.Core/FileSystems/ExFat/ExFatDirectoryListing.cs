using System.Runtime.CompilerServices;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems.ExFat;

// Design notes:
// - What one directory of the volume holds: its representable children (files and directories; symlinks and
//   special files are left out) in tree order, their stored names (FatLongNames.Map over exactly those children, so
//   a left-out entry never pushes a suffix onto a kept one) and the byte offset of each child's entry set. The
//   root starts with three fixed entries (volume label, allocation bitmap, up-case table).
// - Built from the tree alone, so it is the same whenever it is built: the volume builds each listing once at
//   construction (for sizes and the mapping report) and drops it, then rebuilds listings on demand for reads.
// - Immutable once built; thread-safe.

/// <summary>The children, stored names and entry-set offsets of one synthesized exFAT directory.</summary>
internal sealed class ExFatDirectoryListing
{
    /// <summary>Bytes of the root's fixed entries (label, bitmap, up-case).</summary>
    public const int RootHeaderBytes = 3 * ExFatDirectoryEntries.EntrySize;

    private ExFatDirectoryListing(int directory, int[] children, string[] names, long[] offsets)
    {
        Directory = directory;
        Children = children;
        Names = names;
        Offsets = offsets;
    }

    /// <summary>The directory's tree index.</summary>
    public int Directory { get; }

    /// <summary>Tree indexes of the stored children, in order.</summary>
    public int[] Children { get; }

    /// <summary>The stored name of each child.</summary>
    public string[] Names { get; }

    /// <summary>Offsets[i] = byte offset of child i's entry set; Offsets[^1] = bytes used by all entries.</summary>
    public long[] Offsets { get; }

    /// <summary>Bytes the directory's entries take.</summary>
    public long UsedBytes => Offsets[^1];

    /// <summary>
    /// The listing of directory <paramref name="directory"/>. When <paramref name="mappings"/> is given, every child
    /// stored under another name or left out is added to it, in tree order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    public static ExFatDirectoryListing Build(IFileTree tree, int directory, List<FileNameMapping>? mappings)
    {
        int reported = mappings?.Count ?? 0;
        var (children, names, changed) = StorableChildren.Of(tree, directory, "exFAT", mappings);
        var offsets = new long[names.Length + 1];
        long at = directory == 0 ? RootHeaderBytes : 0;
        for (int i = 0; i < names.Length; i++)
        {
            offsets[i] = at;
            at += ExFatDirectoryEntries.SetSize(names[i].Length);
            if (changed[i])
            {
                mappings?.Add(new FileNameMapping(children[i], FileTreePath.Of(tree, children[i]), names[i], ReasonFor(tree.GetEntry(children[i]).Name)));
            }
        }

        offsets[^1] = at;
        mappings?.Sort(reported, mappings.Count - reported, Comparer<FileNameMapping>.Create((a, b) => a.Entry.CompareTo(b.Entry)));
        return new ExFatDirectoryListing(directory, [.. children], names, offsets);
    }

    /// <summary>The index of the first child whose entry set ends after <paramref name="offset"/> (Children.Length if none).</summary>
    public int ChildAt(long offset)
    {
        int lo = 0, hi = Children.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) / 2);
            if (Offsets[mid + 1] <= offset)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private static string ReasonFor(string original)
    {
        if (original.Length > FatLongNames.MaxLength)
        {
            return $"name longer than {FatLongNames.MaxLength} UTF-16 units";
        }

        if (original.Any(FatLongNames.IsForbidden))
        {
            return "forbidden character";
        }

        return original[^1] is '.' or ' ' ? "trailing dot or space" : "case collision";
    }
}
