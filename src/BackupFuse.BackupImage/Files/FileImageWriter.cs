using System.Diagnostics;
using System.Formats.Tar;
using System.Security.Cryptography;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - A file-level image is an ordinary image whose "disk" is a data stream: file contents, each starting at a 4 KiB
//   boundary, then the catalog starting at a chunk boundary, then zeros to the next chunk boundary: the stream is whole
//   chunks, so a chunk has one length in every image of a chain and a merge copies payloads as they are
//   (docs/format.md section 12). Chunking, compression,
//   checksums, encryption, the index and the trailer are exactly those of block images (ImageStreamWriter).
// - An incremental (options.Parent, a file-level chain) keeps every offset of its parent valid: its own part of the
//   stream starts at the first chunk boundary after the parent's whole stream, its catalog points unchanged files at
//   the parent's offsets, and the chunks before its part are left Absent, so the chain reads them from the parent.
//   Unchanged = same path, size and mtime; otherwise same size and same SHA-256 of content (a metadata-only change)
//   also reuses the parent's offset. A tar stream cannot be read twice, so that hash check is skipped for tar input:
//   a file whose mtime changed is stored again.
// - A directory is scanned first (DirectoryFileTree.Scan), so the whole layout, the catalog length included, is known
//   before the header is written: the image goes to any forward-only stream (stdout, an S3 upload). A tar stream is
//   written as it is read (no temporary copy), so the header's disk size and catalog place are only known at the end:
//   the header is rewritten then, which needs a seekable destination (a local file).
// - Content is read once into the image; its SHA-256 is computed on the way. A directory file that shrinks between the
//   scan and the read is an IOException (DirectoryFileTree), never zeros; one that grows is stored at its scanned size.
// - Single-threaded: compression runs on the calling thread (StreamChunkSink).

/// <summary>Writes file-level backup images: a directory or a tar stream, full or incremental.</summary>
public static class FileImageWriter
{
    /// <summary>Alignment of each file's start in the data stream.</summary>
    public const int FileAlignment = 4096;

    private const int CopyBufferSize = 1 << 20;

    private static readonly byte[] EmptySha256 = SHA256.HashData([]);

    /// <summary>Backs up the tree under <paramref name="directory"/> to <paramref name="destinationPath"/> ("-" = stdout).</summary>
    /// <exception cref="IOException">The directory cannot be read or the destination cannot be written.</exception>
    /// <exception cref="InvalidDataException">The tree cannot be stored, or the parent is not a file-level image.</exception>
    public static FileBackupResult BackupDirectory(string directory, string destinationPath, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        using var tree = DirectoryFileTree.Scan(directory);
        return BackupWriter.ToDestination(destinationPath, (output, name) => WriteTree(tree, directory, output, name, options, progress, cancellationToken));
    }

    /// <summary>Backs up the tree under <paramref name="directory"/> to a forward-only stream (not closed).</summary>
    public static FileBackupResult BackupDirectory(string directory, Stream destination, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(destination);
        using var tree = DirectoryFileTree.Scan(directory);
        return WriteTree(tree, directory, destination, "stream", options, progress, cancellationToken);
    }

    /// <summary>
    /// Backs up the tar archive read from <paramref name="tar"/> (ustar, pax or GNU) to the local file
    /// <paramref name="destinationPath"/>; content is streamed into the image as it is read.
    /// </summary>
    /// <exception cref="InvalidDataException">The archive is damaged or holds what cannot be a tree.</exception>
    public static FileBackupResult BackupTar(Stream tar, string destinationPath, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tar);
        ArgumentException.ThrowIfNullOrEmpty(destinationPath);
        if (destinationPath == "-")
        {
            throw new ArgumentException("a backup of a tar stream is written to a file (its header is completed at the end), not to standard output", nameof(destinationPath));
        }

        return BackupWriter.ToDestination(destinationPath, (output, name) => BackupTar(tar, output, name, options, progress, cancellationToken));
    }

    /// <summary>Backs up the tar archive read from <paramref name="tar"/> to a seekable <paramref name="destination"/> (not closed).</summary>
    public static FileBackupResult BackupTar(Stream tar, Stream destination, string destinationName, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tar);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(options);
        if (!destination.CanSeek)
        {
            throw new ArgumentException("a backup of a tar stream needs a seekable destination (its header is completed at the end)", nameof(destination));
        }

        var sw = Stopwatch.StartNew();
        using var parent = OpenParent(options);
        int chunkSize = options.ChunkSize ?? options.Parent?.ChunkSize ?? BackupOptions.DefaultChunkSize;
        long start = parent == null ? 0 : AlignUp(options.Parent!.DiskSize, chunkSize);
        long origin = destination.Position;
        var header = BackupWriter.BuildHeader("tar stream", Math.Max(1, start), options, files: true, out var keys);
        using (keys)
        {
            var writer = new ImageStreamWriter(destination, header, keys, options.Deduplicate);
            var sink = new StreamChunkSink(writer, header, options, start);
            var builder = new FileTreeBuilder();
            var stored = new Dictionary<string, (long Offset, long Size, byte[] Sha)>(StringComparer.Ordinal);
            var buffer = new byte[CopyBufferSize];
            long read = 0, newBytes = 0, lastReport = Environment.TickCount64;
            using var reader = new TarReader(tar, leaveOpen: true);
            TarEntry? entry;
            while ((entry = NextEntry(reader)) != null)
            {
                try
                {
                    AddTarEntry(entry);
                }
                catch (InvalidDataException e) when (!e.Message.StartsWith("tar stream", StringComparison.Ordinal))
                {
                    throw new InvalidDataException($"tar stream: {e.Message}", e);
                }
                catch (Exception e) when (e is FormatException or EndOfStreamException)
                {
                    throw new InvalidDataException($"tar stream, entry '{entry.Name}': {e.Message}", e);
                }
            }

            void AddTarEntry(TarEntry entry)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string path = TarPath(entry.Name);
                long mtime = UnixNs(entry.ModificationTime);
                long atime = AccessTime(entry) ?? mtime;
                uint permissions = (uint)entry.Mode & 0xFFF;
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        if (path.Length == 0)
                        {
                            builder.SetRoot(mtime, atime, 0x4000 | permissions);
                        }
                        else
                        {
                            builder.Add(path, FileTreeEntryKind.Directory, 0, mtime, atime, 0x4000 | permissions);
                        }

                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    {
                        RequireName(path, entry);
                        long size = entry.Length;
                        (long Offset, long Size, byte[] Sha) place;
                        int old = parent?.Catalog.Find(path) ?? -1;
                        if (old >= 0 && parent!.Catalog.KindOf(old) == FileTreeEntryKind.File && parent.Catalog.SizeOf(old) == size && parent.Catalog.ModifiedOf(old) == mtime)
                        {
                            place = (parent.Catalog.DataOffsetOf(old), size, parent.Catalog.HashOf(old).ToArray());
                        }
                        else if (size == 0)
                        {
                            place = (0, 0, EmptySha256);
                        }
                        else
                        {
                            long offset = AlignUp(sink.Position, FileAlignment);
                            sink.SkipTo(offset);
                            var data = entry.DataStream ?? throw new InvalidDataException($"tar stream, entry '{entry.Name}': no data for a file of {size} bytes");
                            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                            long left = size;
                            while (left > 0)
                            {
                                int n = data.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                                if (n == 0)
                                {
                                    throw new InvalidDataException($"tar stream, entry '{entry.Name}': the archive ends inside its data ({size - left} of {size} bytes)");
                                }

                                sink.Append(buffer.AsSpan(0, n));
                                sha.AppendData(buffer, 0, n);
                                left -= n;
                                read += n;
                                if (progress != null && Environment.TickCount64 - lastReport >= 100)
                                {
                                    lastReport = Environment.TickCount64;
                                    progress.Report(new BackupProgress(read, 0, writer.Position));
                                }
                            }

                            newBytes += size;
                            place = (offset, size, sha.GetHashAndReset());
                        }

                        builder.Add(path, FileTreeEntryKind.File, size, mtime, atime, 0x8000 | permissions, content: NoContent);
                        stored[Canonical(path)] = place;
                        break;
                    }

                    case TarEntryType.HardLink:
                    {
                        RequireName(path, entry);
                        if (!stored.TryGetValue(Canonical(TarPath(entry.LinkName)), out var target))
                        {
                            throw new InvalidDataException($"tar stream, entry '{entry.Name}': hard link to '{entry.LinkName}', which is not an earlier file of the archive");
                        }

                        builder.Add(path, FileTreeEntryKind.File, target.Size, mtime, atime, 0x8000 | permissions, content: NoContent);
                        stored[Canonical(path)] = target;
                        break;
                    }

                    case TarEntryType.SymbolicLink:
                        RequireName(path, entry);
                        builder.Add(path, FileTreeEntryKind.Symlink, 0, mtime, atime, 0xA000 | permissions, entry.LinkName);
                        break;
                    case TarEntryType.CharacterDevice:
                        RequireName(path, entry);
                        builder.Add(path, FileTreeEntryKind.Other, 0, mtime, atime, 0x2000 | permissions);
                        break;
                    case TarEntryType.BlockDevice:
                        RequireName(path, entry);
                        builder.Add(path, FileTreeEntryKind.Other, 0, mtime, atime, 0x6000 | permissions);
                        break;
                    case TarEntryType.Fifo:
                        RequireName(path, entry);
                        builder.Add(path, FileTreeEntryKind.Other, 0, mtime, atime, 0x1000 | permissions);
                        break;
                    case TarEntryType.GlobalExtendedAttributes:
                        break;
                    default:
                        throw new InvalidDataException($"tar stream, entry '{entry.Name}': entry type {entry.EntryType} is not supported");
                }
            }

            using var tree = builder.Build();
            FileCatalogWriter.Check(tree, "tar stream");
            var fields = Finish(tree, sink, writer, header.ChunkSize, i => stored[Canonical(FileCatalogWriter.PathOf(tree, i))] is var p ? (p.Offset, p.Sha) : default, newBytes);
            header = fields.ApplyTo(header with { DiskSize = AlignUp(fields.CatalogOffset + fields.CatalogLength, header.ChunkSize) });

            // The header is only complete now: rewrite it in place, then return to the end.
            long end = destination.Position;
            var hb = new byte[ImageHeader.Size];
            header.WriteTo(hb);
            destination.Seek(origin, SeekOrigin.Begin);
            destination.Write(hb);
            destination.Seek(end, SeekOrigin.Begin);
            destination.Flush();
            progress?.Report(new BackupProgress(read, read, writer.Position));
            return Result(destinationName, header, writer, fields, read, sw.Elapsed);
        }
    }

    private static FileBackupResult WriteTree(IFileTree tree, string directory, Stream output, string destinationName, BackupOptions options, IProgress<BackupProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var sw = Stopwatch.StartNew();
        FileCatalogWriter.Check(tree, directory);
        using var parent = OpenParent(options);
        int chunkSize = options.ChunkSize ?? options.Parent?.ChunkSize ?? BackupOptions.DefaultChunkSize;
        long start = parent == null ? 0 : AlignUp(options.Parent!.DiskSize, chunkSize);

        // Plan: where each file's content is (the parent's place when unchanged), so the catalog's length and place,
        // hence the header, are known before anything is written.
        var offsets = new long[tree.Count];
        var hashes = new byte[tree.Count][];
        var parentIndex = parent == null ? null : new int[tree.Count];
        var toStore = new List<int>();
        long position = start, newBytes = 0;
        for (int i = 0; i < tree.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var e = tree.GetEntry(i);
            int old = -1;
            if (parentIndex != null)
            {
                old = i == 0 ? 0 : parentIndex[e.Parent] is var p && p >= 0 && parent!.Catalog.KindOf(p) == FileTreeEntryKind.Directory ? parent.Catalog.FindChild(p, e.Name) : -1;
                parentIndex[i] = old;
            }

            if (e.Kind != FileTreeEntryKind.File)
            {
                continue;
            }

            if (old >= 0 && parent!.Catalog.KindOf(old) == FileTreeEntryKind.File && parent.Catalog.SizeOf(old) == e.Size &&
                (parent.Catalog.ModifiedOf(old) == e.ModifiedUnixNs || HashOf(tree, i, e.Size).AsSpan().SequenceEqual(parent.Catalog.HashOf(old))))
            {
                offsets[i] = parent.Catalog.DataOffsetOf(old);
                hashes[i] = parent.Catalog.HashOf(old).ToArray();
            }
            else if (e.Size == 0)
            {
                hashes[i] = EmptySha256;
            }
            else
            {
                offsets[i] = AlignUp(position, FileAlignment);
                position = offsets[i] + e.Size;
                newBytes += e.Size;
                toStore.Add(i);
            }
        }

        long catalogOffset = AlignUp(position, chunkSize);
        long catalogLength = FileCatalogWriter.Measure(tree);
        long total = AlignUp(catalogOffset + catalogLength, chunkSize);
        var header = BackupWriter.BuildHeader(directory, total, options, files: true, out var keys);
        var planned = Fields(tree, catalogOffset, catalogLength, newBytes);
        header = planned.ApplyTo(header);
        using (keys)
        {
            var writer = new ImageStreamWriter(output, header, keys, options.Deduplicate);
            var sink = new StreamChunkSink(writer, header, options, start);
            var buffer = new byte[CopyBufferSize];
            long read = 0, lastReport = Environment.TickCount64;
            foreach (int i in toStore)
            {
                long size = tree.GetEntry(i).Size;
                sink.SkipTo(offsets[i]);
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                for (long done = 0; done < size;)
                {
                    ct.ThrowIfCancellationRequested();
                    int n = (int)Math.Min(buffer.Length, size - done);
                    tree.ReadFile(i, done, buffer.AsSpan(0, n));
                    sink.Append(buffer.AsSpan(0, n));
                    sha.AppendData(buffer, 0, n);
                    done += n;
                    read += n;
                    if (progress != null && Environment.TickCount64 - lastReport >= 100)
                    {
                        lastReport = Environment.TickCount64;
                        progress.Report(new BackupProgress(read, newBytes + catalogLength, writer.Position));
                    }
                }

                hashes[i] = sha.GetHashAndReset();
            }

            var fields = Finish(tree, sink, writer, header.ChunkSize, i => (offsets[i], hashes[i]), newBytes);
            if (fields != planned)
            {
                throw new InvalidOperationException($"file image layout changed while writing ({fields} vs {planned})");
            }

            progress?.Report(new BackupProgress(newBytes + catalogLength, newBytes + catalogLength, writer.Position));
            return Result(destinationName, header, writer, fields, read, sw.Elapsed);
        }
    }

    private static FileImageFields Finish(IFileTree tree, StreamChunkSink sink, ImageStreamWriter writer, int chunkSize, FileCatalogWriter.FileLocator locate, long newBytes)
    {
        long catalogOffset = AlignUp(sink.Position, chunkSize);
        sink.SkipTo(catalogOffset);
        FileCatalogWriter.Write(tree, locate, sink.Append);
        long catalogLength = sink.Position - catalogOffset;
        sink.SkipTo(AlignUp(sink.Position, chunkSize)); // whole chunks only: every layer's chunks have one length
        sink.Finish();
        writer.Finish();
        return Fields(tree, catalogOffset, catalogLength, newBytes);
    }

    private static FileImageFields Fields(IFileTree tree, long catalogOffset, long catalogLength, long newBytes)
    {
        long files = 0, dirs = 0, links = 0, others = 0, bytes = 0;
        for (int i = 0; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            switch (e.Kind)
            {
                case FileTreeEntryKind.File:
                    files++;
                    bytes += e.Size;
                    break;
                case FileTreeEntryKind.Directory:
                    dirs++;
                    break;
                case FileTreeEntryKind.Symlink:
                    links++;
                    break;
                default:
                    others++;
                    break;
            }
        }

        return new FileImageFields(catalogOffset, catalogLength, files, dirs, links, others, bytes, newBytes);
    }

    private static FileBackupResult Result(string destination, ImageHeader header, ImageStreamWriter writer, FileImageFields fields, long read, TimeSpan elapsed) =>
        new(BackupResult.Of(destination, header, writer, read, elapsed), fields);

    private static FileImageTree? OpenParent(BackupOptions options)
    {
        if (options.Parent is not { } chain)
        {
            return null;
        }

        if (!FileImageFields.IsFileImage(chain.Top.Header))
        {
            throw new InvalidDataException($"the parent image {chain.Top.Path} is a disk backup: an incremental of files needs a file-level parent (backup --files)");
        }

        return FileImageTree.Open(chain);
    }

    private static byte[] HashOf(IFileTree tree, int index, long size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[(int)Math.Min(CopyBufferSize, Math.Max(1, size))];
        for (long done = 0; done < size;)
        {
            int n = (int)Math.Min(buffer.Length, size - done);
            tree.ReadFile(index, done, buffer.AsSpan(0, n));
            sha.AppendData(buffer, 0, n);
            done += n;
        }

        return sha.GetHashAndReset();
    }

    private static TarEntry? NextEntry(TarReader reader)
    {
        try
        {
            return reader.GetNextEntry(copyData: false);
        }
        catch (Exception e) when (e is FormatException or EndOfStreamException or ArgumentException)
        {
            throw new InvalidDataException($"tar stream: not a readable tar archive: {e.Message}", e);
        }
    }

    private static void RequireName(string path, TarEntry entry)
    {
        if (path.Length == 0)
        {
            throw new InvalidDataException($"tar stream, entry '{entry.Name}': a {entry.EntryType} cannot be the root directory");
        }
    }

    // "./a/b/", "/a//b" and "a/./b" all name "a/b"; ".." is left in, for FileTreeBuilder to refuse.
    private static string TarPath(string name) => string.Join('/', name.Split('/').Where(p => p.Length > 0 && p != "."));

    private static string Canonical(string path) => path;

    private static void NoContent(long offset, Span<byte> buffer) =>
        throw new InvalidOperationException("tar content is read from the archive, not through the tree");

    private static long? AccessTime(TarEntry entry)
    {
        if (entry is GnuTarEntry gnu && gnu.AccessTime != default && gnu.AccessTime != DateTimeOffset.UnixEpoch)
        {
            return UnixNs(gnu.AccessTime);
        }

        if (entry is PaxTarEntry pax && pax.ExtendedAttributes.TryGetValue("atime", out string? value) &&
            decimal.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out decimal seconds))
        {
            return UnixNanoseconds.FromSeconds(seconds);
        }

        return null;
    }

    private static long UnixNs(DateTimeOffset time) => UnixNanoseconds.From(time);

    private static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;
}
