using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - Serializes an IFileTree (already breadth-first and sorted, the IFileTree contract) in the catalog format that
//   FileCatalog parses (docs/format.md section 12.2). Measure gives the exact length first, because a directory backup
//   writes the image header, which records the catalog's place, before any content.
// - Refuses what the parser would refuse (a name or target too long, a mode that does not fit the kind) with an
//   InvalidDataException naming the entry, so the writer never produces an image that does not read.
// - Output goes through a small buffer to a sink delegate; memory does not grow with the tree.

/// <summary>Writes the catalog of a file-level image.</summary>
internal static class FileCatalogWriter
{
    /// <summary>Where a file's content is in the stream, and its SHA-256.</summary>
    public delegate (long Offset, byte[] Sha256) FileLocator(int index);

    /// <summary>The exact length of the catalog of <paramref name="tree"/>.</summary>
    public static long Measure(IFileTree tree)
    {
        long length = FileCatalog.PrefixLength + FileCatalog.SuffixLength;
        for (int i = 0; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            length += FileCatalog.EntryFixedLength + Encoding.UTF8.GetByteCount(e.Name) + e.Kind switch
            {
                FileTreeEntryKind.Directory => 4,
                FileTreeEntryKind.File => 8 + 8 + 32,
                FileTreeEntryKind.Symlink => 2 + Encoding.UTF8.GetByteCount(e.SymlinkTarget!),
                _ => 0,
            };
        }

        return length;
    }

    /// <summary>Checks that every entry of <paramref name="tree"/> can be written (names, targets, modes); messages start with <paramref name="sourceName"/>.</summary>
    /// <exception cref="InvalidDataException">An entry cannot be stored; the message names its path.</exception>
    public static void Check(IFileTree tree, string sourceName)
    {
        if (tree.Count < 1 || tree.Count > FileCatalog.MaxLength / FileCatalog.EntryFixedLength)
        {
            throw new InvalidDataException($"{sourceName}: a tree of {tree.Count} entries cannot be stored");
        }

        for (int i = 0; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            int nameBytes = Encoding.UTF8.GetByteCount(e.Name);
            if (i > 0 && (nameBytes == 0 || nameBytes > FileCatalog.MaxNameBytes))
            {
                throw new InvalidDataException($"{sourceName}: {PathOf(tree, i)}: a name of {nameBytes} bytes cannot be stored (1..{FileCatalog.MaxNameBytes})");
            }

            if (e.Kind == FileTreeEntryKind.Symlink && Encoding.UTF8.GetByteCount(e.SymlinkTarget!) is var t && (t == 0 || t > FileCatalog.MaxTargetBytes))
            {
                throw new InvalidDataException($"{sourceName}: {PathOf(tree, i)}: a symlink target of {t} bytes cannot be stored (1..{FileCatalog.MaxTargetBytes})");
            }

            uint type = e.Mode & 0xF000;
            bool fits = e.Mode <= 0xFFFF && e.Kind switch
            {
                FileTreeEntryKind.Directory => type == 0x4000,
                FileTreeEntryKind.File => type == 0x8000,
                FileTreeEntryKind.Symlink => type == 0xA000,
                _ => type is 0x1000 or 0x2000 or 0x6000 or 0xC000,
            };
            if (!fits)
            {
                throw new InvalidDataException($"{sourceName}: {PathOf(tree, i)}: mode 0{Convert.ToString(e.Mode, 8)} does not fit a {e.Kind}");
            }
        }
    }

    /// <summary>The '/'-separated path of entry <paramref name="index"/> ("" for the root).</summary>
    public static string PathOf(IFileTree tree, int index)
    {
        var parts = new List<string>();
        for (int i = index; i != 0; i = tree.GetEntry(i).Parent)
        {
            parts.Add(tree.GetEntry(i).Name);
        }

        parts.Reverse();
        return string.Join('/', parts);
    }

    /// <summary>Writes the catalog of <paramref name="tree"/> to <paramref name="sink"/>, in pieces.</summary>
    public static void Write(IFileTree tree, FileLocator locate, Action<ReadOnlySpan<byte>> sink)
    {
        var buffer = new byte[64 * 1024];
        int used = 0;
        uint crc = 0xFFFFFFFFu;

        void Put(ReadOnlySpan<byte> bytes)
        {
            while (bytes.Length > 0)
            {
                if (used == buffer.Length)
                {
                    crc = Crc32C.Update(crc, buffer);
                    sink(buffer);
                    used = 0;
                }

                int n = Math.Min(bytes.Length, buffer.Length - used);
                bytes[..n].CopyTo(buffer.AsSpan(used));
                used += n;
                bytes = bytes[n..];
            }
        }

        Span<byte> fixedPart = stackalloc byte[FileCatalog.PrefixLength];
        FileCatalog.Magic.CopyTo(fixedPart);
        BinaryPrimitives.WriteUInt32LittleEndian(fixedPart[8..], (uint)tree.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(fixedPart[12..], 0);
        Put(fixedPart);
        Span<byte> num = stackalloc byte[8];
        for (int i = 0; i < tree.Count; i++)
        {
            var e = tree.GetEntry(i);
            byte[] name = Encoding.UTF8.GetBytes(e.Name);
            num[0] = (byte)e.Kind;
            Put(num[..1]);
            BinaryPrimitives.WriteUInt32LittleEndian(num, e.Mode);
            Put(num[..4]);
            BinaryPrimitives.WriteInt64LittleEndian(num, e.ModifiedUnixNs);
            Put(num);
            BinaryPrimitives.WriteInt64LittleEndian(num, e.AccessedUnixNs);
            Put(num);
            BinaryPrimitives.WriteUInt16LittleEndian(num, (ushort)name.Length);
            Put(num[..2]);
            Put(name);
            switch (e.Kind)
            {
                case FileTreeEntryKind.Directory:
                    BinaryPrimitives.WriteUInt32LittleEndian(num, (uint)e.ChildCount);
                    Put(num[..4]);
                    break;
                case FileTreeEntryKind.File:
                    var (offset, sha) = locate(i);
                    BinaryPrimitives.WriteInt64LittleEndian(num, e.Size);
                    Put(num);
                    BinaryPrimitives.WriteInt64LittleEndian(num, offset);
                    Put(num);
                    Put(sha);
                    break;
                case FileTreeEntryKind.Symlink:
                    byte[] target = Encoding.UTF8.GetBytes(e.SymlinkTarget!);
                    BinaryPrimitives.WriteUInt16LittleEndian(num, (ushort)target.Length);
                    Put(num[..2]);
                    Put(target);
                    break;
                default:
                    break;
            }
        }

        crc = Crc32C.Update(crc, buffer.AsSpan(0, used));
        BinaryPrimitives.WriteUInt32LittleEndian(num, ~crc);
        sink(buffer.AsSpan(0, used));
        sink(num[..4]);
    }
}
