using System.Buffers.Binary;
using System.Text;
using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

// Hand-made catalogs (docs/format.md section 12.2), each damaged in one way, with a CORRECT checksum so that the
// structural checks, not the CRC, must catch the damage.
public sealed class FilesCatalogHostileTests
{
    private const long StreamEnd = 1 << 20;

    [Fact]
    public void AWellFormedHandMadeCatalogParses()
    {
        var cat = FileCatalog.Parse(Build(Root(2), Dir("a", 1), File("b", 10, 4096), File("c", 5, 0)), StreamEnd, "t");
        Assert.Equal(4, cat.Count);
        Assert.Equal("c", cat.GetEntry(cat.Find("a/c")).Name);
        Assert.Equal(1, cat.GetEntry(3).Parent);
        Assert.Equal(2, cat.FileCount);
    }

    [Fact]
    public void TheChecksumCoversEveryByteOfACatalogLongerThanTheParsersReadWindow()
    {
        // 40,000 files of ~75 bytes: 3 MiB, so the parser reads it in several 1 MiB windows; a flipped mtime bit (no
        // structural check looks at mtimes) anywhere, a window boundary included, must still fail the checksum.
        const int files = 40_000;
        var entries = new List<byte[]> { Root(files) };
        entries.AddRange(Enumerable.Range(0, files).Select(i => File($"f{i:D6}", 1, 0)));
        byte[] good = Build([.. entries]);
        Assert.True(good.Length > 2 << 20, $"{good.Length} bytes: at least three read windows");
        var cat = FileCatalog.Parse(good, StreamEnd, "t");
        Assert.Equal(files + 1, cat.Count);
        Assert.Equal("f039999", cat.NameOf(files));

        int entryBytes = FileCatalog.EntryFixedLength + 7 + 48;
        int firstFile = FileCatalog.PrefixLength + FileCatalog.EntryFixedLength + 4;
        foreach (int entry in new[] { 0, 1, (1 << 20) / entryBytes, ((1 << 20) / entryBytes) + 1, (2 << 20) / entryBytes, files - 1 })
        {
            byte[] bad = (byte[])good.Clone();
            bad[firstFile + (entry * entryBytes) + 1 + 4 + 3] ^= 0x10; // a byte of the mtime
            Fails(bad, "checksum");
        }
    }

    [Fact]
    public void TheCompactAccessorsAgreeWithTheFullEntries()
    {
        var cat = FileCatalog.Parse(Build(Root(4), Dir("a", 1), File("b", 10, 4096), Link("l", "target"), Other("p"), File("ü", 5, 0)), StreamEnd, "t");
        for (int i = 0; i < cat.Count; i++)
        {
            var e = cat.GetEntry(i);
            Assert.Equal(e.Kind, cat.KindOf(i));
            Assert.Equal(e.Size, cat.SizeOf(i));
            Assert.Equal(e.Name, cat.NameOf(i));
        }
    }

    [Fact]
    public void ACatalogParsedWithoutHashesIsTheSameTreeAndRefusesHashLookups()
    {
        byte[] bytes = Build(Root(2), File("a", 10, 4096), File("b", 5, 0));
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(FileCatalog.PrefixLength + FileCatalog.EntryFixedLength + 4 + FileCatalog.EntryFixedLength + 1 + 16), 0x1122334455667788);
        Stamp(bytes); // a recognizable hash for file "a"
        var with = FileCatalog.Parse(bytes, StreamEnd, "t");
        var without = FileCatalog.Parse((offset, buffer) => bytes.AsSpan((int)offset, buffer.Length).CopyTo(buffer), bytes.Length, StreamEnd, "t", keepHashes: false);
        Assert.True(with.HasHashes);
        Assert.False(without.HasHashes);
        Assert.Equal(0x1122334455667788, BinaryPrimitives.ReadInt64LittleEndian(with.HashOf(1)));
        Assert.Throws<InvalidOperationException>(() => without.HashOf(1).Length);
        Assert.Equal(with.Count, without.Count);
        for (int i = 0; i < with.Count; i++)
        {
            Assert.Equal(with.GetEntry(i), without.GetEntry(i));
            Assert.Equal(with.DataOffsetOf(i), without.DataOffsetOf(i));
        }
    }

    [Fact]
    public void EveryTruncationIsAClearError()
    {
        byte[] whole = Build(Root(3), Dir("a", 1), Link("l", "target"), File("z", 10, 0), Other("p"));
        for (int cut = 0; cut < whole.Length; cut++)
        {
            byte[] part = whole[..cut];
            if (part.Length >= 4)
            {
                Stamp(part); // a consistent checksum: the structure must reveal the truncation
            }

            Fails(part, null);
        }
    }

    [Fact]
    public void ChildCountsThatOverflowOrLeaveEntriesOrphanedAreErrors()
    {
        Fails(Build(Root(1000), File("a", 1, 0)), "overflow");
        Fails(Build(Root(1), Dir("a", 0), File("b", 1, 0)), "in no directory");
        Fails(Build(Root(uint.MaxValue), File("a", 1, 0)), "overflow");

        // A directory "containing itself" cannot be written: the only way to point back is a count that runs out.
        Fails(Build(Root(1), Dir("a", 2), Dir("b", 1)), "truncated|overflow");
        Fails(Build(Root(2), Dir("a", 1), Dir("b", 1), Dir("c", 0)), "overflow");
    }

    [Fact]
    public void HugeEntryCountsAreBoundedByTheBytes()
    {
        byte[] small = Build(Root(1), File("a", 1, 0));
        BinaryPrimitives.WriteUInt32LittleEndian(small.AsSpan(8), uint.MaxValue);
        Stamp(small);
        Fails(small, "impossible");

        // A catalog that claims 1 GiB and 40 million entries (say, a header pointing into zeros) fails at the first bad
        // entry without allocating for the claimed count.
        byte[] head = Build(Root(39_999_999));
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(8), 40_000_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => FileCatalog.Parse(
            (offset, buffer) =>
            {
                buffer.Clear();
                if (offset < head.Length - 4)
                {
                    head.AsSpan((int)offset, (int)Math.Min(buffer.Length, head.Length - 4 - offset)).CopyTo(buffer);
                }
            },
            1L << 30,
            StreamEnd,
            "zeros"));
        Assert.Contains("entry 1", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "a huge claimed count allocated memory");
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("a\0b")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("/")]
    public void NamesThatAreNotNamesAreErrors(string name) => Fails(Build(Root(1), File(name, 1, 0)), "not a valid name");

    [Fact]
    public void BadNameEncodingsLengthsAndOrderAreErrors()
    {
        Fails(Build(Root(1), Raw(1, 0x81A4, [0xC3, 0x28], Extra.File(1, 0))), "UTF-8");
        Fails(Build(Root(1), Raw(1, 0x81A4, [], Extra.File(1, 0))), "name length");
        Fails(Build(Root(2), File("b", 1, 0), File("a", 1, 0)), "unsorted");
        Fails(Build(Root(2), File("a", 1, 0), File("a", 1, 0)), "duplicate");
        Fails(Build(Root(2), File("é", 1, 0), File("z", 1, 0)), "unsorted"); // UTF-8 order: 'z' (7A) < 'é' (C3 A9)
        Fails(Build(Raw(0, 0x41ED, Encoding.UTF8.GetBytes("root"), Extra.Dir(0))), "root");
        Fails(Build(Raw(1, 0x81A4, [], Extra.File(0, 0))), "root");
    }

    [Fact]
    public void DataOutsideTheStreamIsAnError()
    {
        Fails(Build(Root(1), File("a", 10, StreamEnd - 9)), "outside the data stream");
        Fails(Build(Root(1), File("a", 1, -1)), "outside the data stream");
        Fails(Build(Root(1), File("a", -5, 0)), "outside the data stream");
        Fails(Build(Root(1), File("a", 10, long.MaxValue - 3)), "outside the data stream");
        FileCatalog.Parse(Build(Root(1), File("a", 10, StreamEnd - 10)), StreamEnd, "edge"); // ends exactly at the stream's end
    }

    [Fact]
    public void KindsModesTargetsChecksumsAndTrailingBytesAreChecked()
    {
        Fails(Build(Root(1), Raw(9, 0x81A4, "a"u8.ToArray(), [])), "unknown kind");
        Fails(Build(Root(1), Raw(1, 0x41ED, "a"u8.ToArray(), Extra.File(1, 0))), "does not fit");
        Fails(Build(Root(1), Raw(3, 0x81A4, "a"u8.ToArray(), [])), "does not fit");
        Fails(Build(Root(1), Raw(2, 0xA1FF, "l"u8.ToArray(), [0, 0])), "target length");
        Fails(Build(Root(1), Link("l", "a\0b")), "target");
        byte[] good = Build(Root(1), File("a", 1, 0));
        good[^1] ^= 1;
        Fails(good, "checksum");
        byte[] longer = Build(Root(1), File("a", 1, 0));
        Array.Resize(ref longer, longer.Length + 4);
        Stamp(longer);
        Fails(longer, "follow the last entry");
        byte[] magic = Build(Root(0));
        magic[0] = (byte)'X';
        Stamp(magic);
        Fails(magic, "magic");
    }

    [Fact]
    public void RandomDamageWithAValidChecksumNeverCrashes()
    {
        byte[] good = Build(Root(3), Dir("d", 2), Link("l", "somewhere"), File("f", 100, 4096), File("x", 3, 0), Other("y"));
        var rng = new Random(1234);
        int rejected = 0;
        for (int round = 0; round < 20_000; round++)
        {
            byte[] bad = (byte[])good.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
            {
                bad[rng.Next(bad.Length - 4)] = (byte)rng.Next(256);
            }

            Stamp(bad);
            try
            {
                var cat = FileCatalog.Parse(bad, StreamEnd, "fuzz");
                for (int i = 0; i < cat.Count; i++)
                {
                    var e = cat.GetEntry(i);
                    Assert.True(e.Parent < i || i == 0);
                    Assert.True(e.Kind != FileTreeEntryKind.Directory || e.FirstChild + e.ChildCount <= cat.Count);
                }
            }
            catch (InvalidDataException e)
            {
                Assert.StartsWith("fuzz: damaged file catalog: ", e.Message);
                Assert.DoesNotContain('\n', e.Message);
                rejected++;
            }
        }

        Assert.True(rejected > 10_000, $"only {rejected} damaged catalogs were rejected");
    }

    [Fact]
    public void AHeaderThatDoesNotPointAtTheCatalogIsAnError()
    {
        byte[] catalog = Build(Root(1), File("a", 3, 0));
        byte[] stream = new byte[8192 + catalog.Length];
        catalog.CopyTo(stream, 8192);
        var header = new ImageHeader { ImageId = Guid.NewGuid(), DiskSize = stream.Length, ChunkSize = 4096, EntriesPerPage = 16 };
        using var source = new MemorySource(stream);
        using (var ok = FileImageTree.Open(source, new FileImageFields(8192, catalog.Length, 1, 1, 0, 0, 3, 3).ApplyTo(header), "ok"))
        {
            Assert.Equal(2, ok.Count);
        }

        var e = Assert.Throws<InvalidDataException>(() => FileImageTree.Open(source, new FileImageFields(4096, catalog.Length, 1, 1, 0, 0, 3, 3).ApplyTo(header), "img"));
        Assert.Contains("does not end the", e.Message);
        e = Assert.Throws<InvalidDataException>(() => FileImageTree.Open(source, new FileImageFields(-1, stream.Length + 1, 1, 1, 0, 0, 3, 3).ApplyTo(header), "img"));
        Assert.Contains("does not end the", e.Message);
        e = Assert.Throws<InvalidDataException>(() => FileImageTree.Open(source, header, "img"));
        Assert.Contains("not a file-level backup", e.Message);
        using var wrongPlace = new MemorySource(new byte[stream.Length]);
        e = Assert.Throws<InvalidDataException>(() => FileImageTree.Open(wrongPlace, new FileImageFields(8192, catalog.Length, 1, 1, 0, 0, 3, 3).ApplyTo(header), "img"));
        Assert.Contains("magic", e.Message);
    }

    private static void Fails(byte[] catalog, string? pattern)
    {
        var e = Assert.Throws<InvalidDataException>(() => FileCatalog.Parse(catalog, StreamEnd, "img.bfi"));
        Assert.StartsWith("img.bfi: damaged file catalog: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        if (pattern != null)
        {
            Assert.Matches(pattern, e.Message);
        }
    }

    private static byte[] Raw(byte kind, uint mode, byte[] name, byte[] extra)
    {
        var b = new byte[FileCatalog.EntryFixedLength + name.Length + extra.Length];
        b[0] = kind;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(1), mode);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(5), FilesTestKit.BaseTime * 1_000_000_000);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(13), FilesTestKit.BaseTime * 1_000_000_000);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(21), (ushort)name.Length);
        name.CopyTo(b, 23);
        extra.CopyTo(b, 23 + name.Length);
        return b;
    }

    private static byte[] Root(uint children) => Raw(0, 0x41ED, [], Extra.Dir(children));

    private static byte[] Dir(string name, uint children) => Raw(0, 0x41ED, Encoding.UTF8.GetBytes(name), Extra.Dir(children));

    private static byte[] File(string name, long size, long offset) => Raw(1, 0x81A4, Encoding.UTF8.GetBytes(name), Extra.File(size, offset));

    private static byte[] Link(string name, string target)
    {
        byte[] t = Encoding.UTF8.GetBytes(target);
        var extra = new byte[2 + t.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(extra, (ushort)t.Length);
        t.CopyTo(extra, 2);
        return Raw(2, 0xA1FF, Encoding.UTF8.GetBytes(name), extra);
    }

    private static byte[] Other(string name) => Raw(3, 0x11A4, Encoding.UTF8.GetBytes(name), []);

    private static byte[] Build(params byte[][] entries)
    {
        var body = entries.SelectMany(e => e).ToArray();
        var b = new byte[FileCatalog.PrefixLength + body.Length + 4];
        FileCatalog.Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), (uint)entries.Length);
        body.CopyTo(b, FileCatalog.PrefixLength);
        Stamp(b);
        return b;
    }

    private static void Stamp(byte[] catalog) =>
        BinaryPrimitives.WriteUInt32LittleEndian(catalog.AsSpan(catalog.Length - 4), Crc32C.Compute(catalog.AsSpan(0, catalog.Length - 4)));

    private static class Extra
    {
        public static byte[] Dir(uint children)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, children);
            return b;
        }

        public static byte[] File(long size, long offset)
        {
            var b = new byte[48];
            BinaryPrimitives.WriteInt64LittleEndian(b, size);
            BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(8), offset);
            return b;
        }
    }
}
