using System.Buffers.Binary;
using BackupFuse.BackupImage.Files;
using BackupFuse.Core;
using BackupFuse.Core.FileSystems.ExFat;
using BackupFuse.Core.FileSystems.Fat32;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - The catalog of a file-level image (docs/format.md section 12.2) comes from the image, so from anyone who can
//   write one. FileCatalog.Parse is what FileImageTree.Open calls. The input's last four bytes are overwritten with
//   the CRC-32C of the rest before parsing: a random mutation would otherwise almost always stop at the checksum, and
//   the structural checks behind it are what this target is for (FilesCatalogHostileTests does the same by hand).
// - A catalog that parses must be a tree the synthesizers can take: every entry's path finds that entry again, and
//   an exFAT and a FAT32 volume built over it (file bytes are a pattern; the tree refuses reads outside a file, so a
//   synthesizer reading past a file's end is a crash) either refuse it with their documented exceptions or read:
//   the first 2 MiB whole (boot region, FAT, bitmap, up-case table, the first directories), one sector every 64 KiB
//   up to 64 MiB (directory clusters further on), and every extent's ends.
// - Data offsets must lie below StreamEnd (1 MiB), which keeps each file small; volumes are built with no headroom.

/// <summary>The file-level image catalog, and the exFAT/FAT32 volumes synthesized from it.</summary>
public sealed class FileCatalogTarget : FuzzTarget
{
    private const long StreamEnd = 1 << 20;
    private const int WholePrefix = 2 << 20;
    private const long SampledSpan = 64L << 20;
    private const int SampleStride = 64 << 10;
    private static readonly FileContentReader Zeros = (_, buffer) => buffer.Clear();

    /// <inheritdoc/>
    public override string Name => "catalog";

    /// <inheritdoc/>
    public override string Description =>
        "file-level catalog (CRC fixed up): FileCatalog.Parse, paths found again, exFAT and FAT32 volumes built and read; passes on InvalidDataException, ArgumentException (volume options/size), FileTooLargeForFat32Exception";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        byte[] catalog = (byte[])input.Clone();
        if (catalog.Length >= 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(catalog.AsSpan(catalog.Length - 4), Crc32C.Compute(catalog.AsSpan(0, catalog.Length - 4)));
        }

        FileCatalog parsed;
        try
        {
            parsed = FileCatalog.Parse(catalog, StreamEnd, "fuzz");
        }
        catch (InvalidDataException)
        {
            return;
        }

        var tree = new PatternTree(parsed);
        for (int i = 1; i < tree.Count; i++)
        {
            string path = FileTreePath.Of(tree, i);
            if (parsed.Find(path) != i)
            {
                throw new FuzzFailureException($"entry {i} '{path}' is found as {parsed.Find(path)}");
            }
        }

        try
        {
            using var exfat = new ExFatVolume(tree, new ExFatOptions { FreeBytes = 0 });
            ReadVolume(exfat);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException and not ArgumentOutOfRangeException)
        {
            // The tree does not fit exFAT (too many clusters, a directory over 256 MiB).
        }

        try
        {
            using var fat32 = new Fat32Volume(tree, new Fat32VolumeOptions { FreeSpaceHeadroom = 0 }, ownsTree: false);
            ReadVolume(fat32);
        }
        catch (Exception e) when (e is InvalidDataException or FileTooLargeForFat32Exception)
        {
            // Too large or too many entries for FAT32; files of 4 GiB and more.
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        Write(directory, "small", b =>
        {
            b.Add("a", FileTreeEntryKind.Directory, 0, 1, 1, 0x41ED);
            b.Add("a/f.txt", FileTreeEntryKind.File, 10, 2, 2, 0x81A4, content: Zeros);
            b.Add("b.bin", FileTreeEntryKind.File, 5000, 3, 3, 0x81A4, content: Zeros);
            b.Add("link", FileTreeEntryKind.Symlink, 0, 4, 4, 0xA1FF, "a/f.txt");
            b.Add("fifo", FileTreeEntryKind.Other, 0, 5, 5, 0x11A4);
        });
        Write(directory, "mapped-names", b =>
        {
            b.Add("Docs", FileTreeEntryKind.Directory, 0, 1, 1, 0x41ED);
            b.Add("Docs/ǆ.txt", FileTreeEntryKind.File, 1, 1, 1, 0x81A4, content: Zeros);
            b.Add("Docs/ǅ.txt", FileTreeEntryKind.File, 2, 1, 1, 0x81A4, content: Zeros);
            b.Add("Docs/a:b", FileTreeEntryKind.File, 3, 1, 1, 0x81A4, content: Zeros);
            b.Add("Docs/dot.", FileTreeEntryKind.File, 3, 1, 1, 0x81A4, content: Zeros);
            b.Add("Docs/" + new string('n', 260), FileTreeEntryKind.File, 3, 1, 1, 0x81A4, content: Zeros);
            b.Add("Docs/empty", FileTreeEntryKind.Directory, 0, 1, 1, 0x41ED);
            b.Add("LONG NAME with spaces.jpeg", FileTreeEntryKind.File, 70000, 1, 1, 0x81A4, content: Zeros);
        });
        Write(directory, "wide", b =>
        {
            for (int i = 0; i < 40; i++)
            {
                b.Add($"d{i % 4}/file-{i:D3}.dat", FileTreeEntryKind.File, i * 1000, i, i, 0x81A4, content: Zeros);
            }
        });
        Write(directory, "deep", b => b.Add("1/2/3/4/5/6/7/8/leaf", FileTreeEntryKind.File, 123, 9, 9, 0x81A4, content: Zeros));
    }

    private static void Write(string directory, string name, Action<FileTreeBuilder> fill)
    {
        var builder = new FileTreeBuilder();
        fill(builder);
        using var tree = builder.Build();
        using var file = File.Create(Path.Combine(directory, name));
        byte[] hash = new byte[32];
        FileCatalogWriter.Write(tree, index => (index * 4096L % (StreamEnd / 2), hash), bytes => file.Write(bytes));
    }

    private static void ReadVolume(BlockSource volume)
    {
        var buffer = new byte[64 << 10];
        for (long offset = 0; offset < Math.Min(volume.Length, WholePrefix); offset += buffer.Length)
        {
            volume.Read(offset, buffer.AsSpan(0, (int)Math.Min(buffer.Length, volume.Length - offset)));
        }

        for (long offset = WholePrefix; offset < Math.Min(volume.Length, SampledSpan); offset += SampleStride)
        {
            volume.Read(offset, buffer.AsSpan(0, (int)Math.Min(512, volume.Length - offset)));
        }

        ExtentWalk.ReadAll(volume, 512);
    }

    // The parsed catalog as a tree whose file bytes are a pattern; reads outside a file are the caller's bug.
    private sealed class PatternTree(FileCatalog catalog) : IFileTree
    {
        public int Count => catalog.Count;

        public FileTreeEntry GetEntry(int index) => catalog.GetEntry(index);

        public void ReadFile(int index, long offset, Span<byte> buffer)
        {
            long size = catalog.KindOf(index) == FileTreeEntryKind.File ? catalog.SizeOf(index) : -1;
            if (size < 0 || offset < 0 || offset > size - buffer.Length)
            {
                throw new FuzzFailureException($"a volume read {offset}+{buffer.Length} of entry {index} ({catalog.KindOf(index)}, {Math.Max(size, 0)} bytes)");
            }

            for (int i = 0; i < buffer.Length; i++)
            {
                buffer[i] = (byte)(offset + i + index);
            }
        }

        public void Dispose()
        {
        }
    }
}
