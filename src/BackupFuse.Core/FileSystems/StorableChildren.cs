using System.Runtime.CompilerServices;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Core.FileSystems;

/// <summary>
/// The children of a directory a FAT-family file system can hold (files and directories) with their stored long
/// names (<see cref="FatLongNames"/>); symlinks and special files are left out and reported. Shared by the exFAT and
/// FAT32 synthesizers, which differ only in the file system's name in the report.
/// </summary>
internal static class StorableChildren
{
    /// <summary>
    /// The kept children of <paramref name="directory"/> in tree order, their stored names, and which names changed; each
    /// child left out is added to <paramref name="omitted"/> when given.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    public static (List<int> Kept, string[] Names, bool[] Changed) Of(IFileTree tree, int directory, string fileSystem, List<FileNameMapping>? omitted)
    {
        var dir = tree.GetEntry(directory);
        var kept = new List<int>(dir.ChildCount);
        var originals = new List<string>(dir.ChildCount);
        for (int c = dir.FirstChild; c < dir.FirstChild + dir.ChildCount; c++)
        {
            var kind = tree.KindOf(c);
            if (kind is FileTreeEntryKind.File or FileTreeEntryKind.Directory)
            {
                kept.Add(c);
                originals.Add(tree.NameOf(c));
            }
            else
            {
                omitted?.Add(new FileNameMapping(c, FileTreePath.Of(tree, c), null,
                    kind == FileTreeEntryKind.Symlink ? $"symlink: {fileSystem} has none" : $"device, FIFO or socket: {fileSystem} has none"));
            }
        }

        var names = FatLongNames.Map(originals, out var changed);
        return (kept, names, changed);
    }
}
