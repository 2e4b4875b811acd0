namespace BackupFuse.Core.FileTrees;

// Design notes:
// - A directory on this host as an IFileTree: walked once (lstat semantics: symlinks are entries, never followed;
//   nothing crosses into other file systems' special files beyond recording them as Other). Content is read from
//   the files by path at ReadFile time, so a file that changes after the scan reads as it is then (the caller backs
//   up a quiet tree or a snapshot). A file shorter than its scanned size is an IOException, never zeros.
// - Times have the 100 ns precision .NET exposes; the root takes the directory's own attributes.

/// <summary>Scans a directory into an <see cref="IFileTree"/>.</summary>
public static class DirectoryFileTree
{
    /// <summary>The tree under <paramref name="directory"/>.</summary>
    /// <exception cref="IOException">The directory cannot be read.</exception>
    public static IFileTree Scan(string directory)
    {
        var root = new DirectoryInfo(Path.GetFullPath(directory));
        if (!root.Exists)
        {
            throw new DirectoryNotFoundException($"{directory}: no such directory");
        }

        var builder = new FileTreeBuilder();
        builder.SetRoot(UnixNs(root.LastWriteTimeUtc), UnixNs(root.LastAccessTimeUtc), ModeOf(root));
        var pending = new Stack<(DirectoryInfo Dir, string Relative)>();
        pending.Push((root, string.Empty));
        var options = new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = 0, IgnoreInaccessible = false, ReturnSpecialDirectories = false };
        while (pending.Count > 0)
        {
            var (dir, relative) = pending.Pop();
            foreach (var info in dir.EnumerateFileSystemInfos("*", options))
            {
                string path = relative.Length == 0 ? info.Name : relative + "/" + info.Name;
                uint mode = ModeOf(info);
                long mtime = UnixNs(info.LastWriteTimeUtc), atime = UnixNs(info.LastAccessTimeUtc);
                if (info.LinkTarget is { } target)
                {
                    builder.Add(path, FileTreeEntryKind.Symlink, 0, mtime, atime, mode, target);
                }
                else if (info is DirectoryInfo sub)
                {
                    builder.Add(path, FileTreeEntryKind.Directory, 0, mtime, atime, mode);
                    pending.Push((sub, path));
                }
                else if ((mode & 0xF000) == 0x8000)
                {
                    var file = (FileInfo)info;
                    string full = file.FullName;
                    long size = file.Length;
                    builder.Add(path, FileTreeEntryKind.File, size, mtime, atime, mode, content: (offset, buffer) => ReadExactly(full, size, offset, buffer));
                }
                else
                {
                    builder.Add(path, FileTreeEntryKind.Other, 0, mtime, atime, mode);
                }
            }
        }

        return builder.Build();
    }

    private static void ReadExactly(string path, long size, long offset, Span<byte> buffer)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n == 0)
            {
                throw new IOException($"{path}: shorter than the {size} bytes it had when scanned");
            }

            done += n;
        }
    }

    private static long UnixNs(DateTime utc) => UnixNanoseconds.From(utc);

    private static uint ModeOf(FileSystemInfo info)
    {
        if (info.LinkTarget != null)
        {
            // FileSystemInfo.UnixFileMode follows the link (the target's mode; -1 for a dangling link). A symlink's
            // own permission bits are always 0777 on Linux and never consulted.
            return 0xA000u | 0x1FFu;
        }

        // Not a symlink, so stat(2) is lstat(2) here; it tells FIFOs, sockets and devices from files.
        if (!Native.PosixCalls.Stat(info.FullName, out var st))
        {
            throw new IOException($"{info.FullName}: cannot stat: {Native.PosixCalls.Describe(Native.PosixCalls.LastErrno())}");
        }

        return st.Mode;
    }
}
