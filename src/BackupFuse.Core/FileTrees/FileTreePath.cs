namespace BackupFuse.Core.FileTrees;

/// <summary>Paths of <see cref="IFileTree"/> entries, for messages and mapping reports.</summary>
public static class FileTreePath
{
    /// <summary>The entry's path from the root, '/'-separated, without a leading '/' ("" for the root).</summary>
    public static string Of(IFileTree tree, int index)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var parts = new List<string>();
        while (index != 0)
        {
            var e = tree.GetEntry(index);
            parts.Add(e.Name);
            index = e.Parent;
        }

        parts.Reverse();
        return string.Join('/', parts);
    }
}
