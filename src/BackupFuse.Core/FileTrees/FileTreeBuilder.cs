namespace BackupFuse.Core.FileTrees;

// Design notes:
// - Collects entries by relative path in any order (a directory walk, a tar stream that lists a directory after its
//   contents) and builds the breadth-first, name-sorted IFileTree the synthesized file systems need.
// - A path's missing parents are created as directories (mode 0755, times 0) and get their real attributes if the
//   directory is added later; adding a path twice keeps the last attributes (tar semantics). Adding an entry under a
//   non-directory, or a non-directory over a directory that has children, is an InvalidDataException: input that
//   cannot be a tree is an error, never silently reshaped.
// - Not thread-safe while building; the built tree is immutable and thread-safe as far as its content readers are.

/// <summary>Builds a <see cref="IFileTree"/> from entries added by relative path.</summary>
public sealed class FileTreeBuilder
{
    private const uint DirectoryType = 0x4000; // S_IFDIR
    private readonly Node _root = new(string.Empty) { Kind = FileTreeEntryKind.Directory, Mode = DirectoryType | 0x1ED };
    private int _count = 1;

    /// <summary>Entries added so far, the root and implied directories included.</summary>
    public int Count => _count;

    /// <summary>Sets the root directory's attributes.</summary>
    public void SetRoot(long modifiedUnixNs, long accessedUnixNs, uint mode)
    {
        _root.ModifiedUnixNs = modifiedUnixNs;
        _root.AccessedUnixNs = accessedUnixNs;
        _root.Mode = mode;
    }

    /// <summary>Adds (or replaces the attributes of) the entry at <paramref name="relativePath"/> ('/'-separated, no "." or "..").</summary>
    /// <exception cref="InvalidDataException">The path or the entry cannot be part of a tree.</exception>
    public void Add(string relativePath, FileTreeEntryKind kind, long size, long modifiedUnixNs, long accessedUnixNs, uint mode, string? symlinkTarget = null, FileContentReader? content = null)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        var parts = relativePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new InvalidDataException($"'{relativePath}': an entry needs a name (the root is set with SetRoot)");
        }

        if (kind == FileTreeEntryKind.File ? size < 0 || (size > 0 && content == null) : size != 0)
        {
            throw new InvalidDataException($"'{relativePath}': size {size} does not fit a {kind}");
        }

        if ((kind == FileTreeEntryKind.Symlink) != (symlinkTarget != null))
        {
            throw new InvalidDataException($"'{relativePath}': only a symlink has a target");
        }

        var node = _root;
        for (int i = 0; i < parts.Length; i++)
        {
            var name = parts[i];
            if (!Utf8NameComparer.IsValidName(name))
            {
                throw new InvalidDataException($"'{relativePath}': '{name}' is not a valid name");
            }

            if (node.Kind != FileTreeEntryKind.Directory)
            {
                throw new InvalidDataException($"'{relativePath}': '{node.Name}' is not a directory");
            }

            node.Children ??= new Dictionary<string, Node>(StringComparer.Ordinal);
            if (!node.Children.TryGetValue(name, out var child))
            {
                child = new Node(name) { Kind = FileTreeEntryKind.Directory, Mode = DirectoryType | 0x1ED };
                node.Children.Add(name, child);
                _count++;
            }

            node = child;
        }

        if (kind != FileTreeEntryKind.Directory && node.Children is { Count: > 0 })
        {
            throw new InvalidDataException($"'{relativePath}': a {kind} cannot replace a directory that has entries");
        }

        node.Kind = kind;
        node.Size = size;
        node.ModifiedUnixNs = modifiedUnixNs;
        node.AccessedUnixNs = accessedUnixNs;
        node.Mode = mode;
        node.SymlinkTarget = symlinkTarget;
        node.Content = content;
    }

    /// <summary>The tree: breadth-first, children sorted by <see cref="Utf8NameComparer"/>.</summary>
    public IFileTree Build()
    {
        var order = new List<Node>(_count) { _root };
        var entries = new FileTreeEntry[_count];
        var readers = new FileContentReader?[_count];
        var parents = new int[_count];
        for (int i = 0; i < order.Count; i++)
        {
            var n = order[i];
            int first = 0, count = 0;
            if (n.Kind == FileTreeEntryKind.Directory && n.Children is { Count: > 0 } children)
            {
                first = order.Count;
                count = children.Count;
                foreach (var c in children.Values.OrderBy(c => c.Name, Utf8NameComparer.Instance))
                {
                    parents[order.Count] = i;
                    order.Add(c);
                }
            }

            entries[i] = new FileTreeEntry(n.Name, n.Kind, parents[i], first, count, n.Size, n.ModifiedUnixNs, n.AccessedUnixNs, n.Mode, n.SymlinkTarget);
            readers[i] = n.Content;
        }

        return new MemoryFileTree(entries, readers);
    }

    private sealed class Node(string name)
    {
        public string Name { get; } = name;

        public FileTreeEntryKind Kind { get; set; }

        public long Size { get; set; }

        public long ModifiedUnixNs { get; set; }

        public long AccessedUnixNs { get; set; }

        public uint Mode { get; set; }

        public string? SymlinkTarget { get; set; }

        public FileContentReader? Content { get; set; }

        public Dictionary<string, Node>? Children { get; set; }
    }
}
