using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Formats;

namespace BackupFuse.Vhdx.Tests.Formats;

/// <summary>
/// The linear monolithicSparse VMDK: header fields, grain directory/table arithmetic (a disk that is not a multiple of
/// the grain size, the largest disk the format addresses, a refused > 2 TiB disk), lazy tables, the write rules, and
/// real readers (QEMU, libvmdk, 7-Zip).
/// </summary>
public sealed class SparseVmdkTests : IDisposable
{
    private const long OddDisk = 20000256; // 39063 sectors: not a multiple of the 128-sector grain
    private static readonly Guid Identity = Guid.Parse("5d1f3a77-0c2b-4e8e-a1b2-c3d4e5f60718");
    private readonly TempDirectory _dir = new("bfvmdk");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void HeaderFieldsDescribeTheLayout()
    {
        var layout = SparseVmdkLayout.Create(OddDisk);
        var head = layout.CreateHeaderAndDescriptor(Identity, "web.vmdk");
        Assert.Equal("KDMV"u8.ToArray(), head[..4]);
        Assert.True(SparseExtentHeader.TryRead(head, out var h));
        Assert.Equal(1u, h.Version);
        Assert.Equal(3u, h.Flags); // newline test + redundant grain directory
        Assert.Equal(39063ul, h.Capacity);
        Assert.Equal(128ul, h.GrainSize);
        Assert.Equal(1ul, h.DescriptorOffset);
        Assert.Equal(20ul, h.DescriptorSize);
        Assert.Equal(512u, h.NumGtesPerGt);
        Assert.Equal(21ul, h.RgdOffset);
        Assert.False(h.UncleanShutdown);
        Assert.Equal("\n \r\n"u8.ToArray(), head[73..77]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(77)));

        // 306 grains (the last one partial), one table of 4 sectors, one directory sector each: RGD 21, its table 22..25,
        // GD 26, its table 27..30, grains from sector 128 (rounded up to a grain).
        Assert.Equal(306, layout.Grains);
        Assert.Equal(1, layout.Tables);
        Assert.Equal(26ul, h.GdOffset);
        Assert.Equal(128ul, h.OverHead);
        Assert.Equal((128 + (306 * 128)) * 512L, layout.FileLength);

        string descriptor = Encoding.UTF8.GetString(head, 512, 20 * 512).TrimEnd('\0');
        Assert.StartsWith("# Disk DescriptorFile\nversion=1\n", descriptor, StringComparison.Ordinal);
        Assert.Contains("parentCID=ffffffff\n", descriptor, StringComparison.Ordinal);
        Assert.Contains("createType=\"monolithicSparse\"\n", descriptor, StringComparison.Ordinal);
        Assert.Contains("RW 39063 SPARSE \"web.vmdk\"\n", descriptor, StringComparison.Ordinal);
        Assert.Equal(head, SparseVmdkLayout.Create(OddDisk).CreateHeaderAndDescriptor(Identity, "web.vmdk"));
    }

    [Theory]
    [InlineData(OddDisk)]
    [InlineData(512L)]
    [InlineData(64L << 20)]
    [InlineData((64L << 20) + 512)]
    public void EveryGrainIsReachedThroughBothDirectoriesAtItsLinearOffset(long size)
    {
        // Follow the on-disk structures as a reader does, from the bytes alone.
        var layout = SparseVmdkLayout.Create(size);
        var meta = new byte[layout.DataOffset];
        layout.CreateHeaderAndDescriptor(Identity, "d.vmdk").CopyTo(meta, 0);
        layout.ReadTables(SparseVmdkLayout.RewritableLength, meta.AsSpan(SparseVmdkLayout.RewritableLength));
        Assert.True(SparseExtentHeader.TryRead(meta, out var h));
        long grains = ((long)h.Capacity + (long)h.GrainSize - 1) / (long)h.GrainSize;
        foreach (ulong directory in new[] { h.GdOffset, h.RgdOffset })
        {
            for (long g = 0; g < grains; g++)
            {
                uint table = BinaryPrimitives.ReadUInt32LittleEndian(meta.AsSpan((int)(((long)directory * 512) + (g / 512 * 4))));
                uint sector = BinaryPrimitives.ReadUInt32LittleEndian(meta.AsSpan((int)(((long)table * 512) + (g % 512 * 4))));
                Assert.Equal((long)h.OverHead + (g * 128), sector);
            }

            // The rest of the last table is unallocated.
            uint lastTable = BinaryPrimitives.ReadUInt32LittleEndian(meta.AsSpan((int)(((long)directory * 512) + ((grains - 1) / 512 * 4))));
            for (long g = grains; g % 512 != 0; g++)
            {
                Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(meta.AsSpan((int)(((long)lastTable * 512) + (g % 512 * 4)))));
            }
        }

        Assert.True(h.OverHead * 512 + (ulong)(grains * 128 * 512) == (ulong)layout.FileLength);
    }

    [Fact]
    public void TheLargestAddressableDiskIsComputedLazilyAndA2TiBDiskIsRefused()
    {
        // 2 TiB less 512 MiB (the tables and their redundant copy take 256 MiB of the 2^32 addressable sectors); its
        // tables would be 2 x 128 MiB if they were held in memory.
        long size = (2L << 40) - (512L << 20);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var layout = SparseVmdkLayout.Create(size);
        long lastGrain = layout.Grains - 1;
        var entry = new byte[4];
        layout.ReadTables((layout.GdOffsetSectors * 512) + (lastGrain / 512 * 4), entry);
        uint table = BinaryPrimitives.ReadUInt32LittleEndian(entry);
        layout.ReadTables(((long)table * 512) + (lastGrain % 512 * 4), entry);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (1 << 20), "the layout allocated memory in proportion to the disk");
        Assert.Equal((ulong)(layout.OverHeadSectors + (lastGrain * 128)), BinaryPrimitives.ReadUInt32LittleEndian(entry));
        Assert.True(layout.OverHeadSectors + (lastGrain * 128) <= uint.MaxValue);
        Assert.Equal((size / 65536) - 1, lastGrain);
        Assert.Equal(size / (32L << 20), layout.Tables); // one table per 32 MiB
        Assert.Equal(((layout.Tables * 4) + 511) / 512, layout.DirectorySectors);

        // The boundary: the largest disk's last grain starts at the last addressable 32-bit sector offset or before.
        var largest = SparseVmdkLayout.Create(SparseVmdkLayout.MaxDiskSize);
        Assert.True(largest.OverHeadSectors + ((largest.Grains - 1) * 128) <= uint.MaxValue);
        foreach (long tooBig in new[] { SparseVmdkLayout.MaxDiskSize + 512, 2L << 40, (2L << 40) + 512, 3L << 40 })
        {
            var e = Assert.Throws<InvalidDataException>(() => SparseVmdkLayout.Create(tooBig));
            Assert.Contains("2 TiB less its tables", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void WritesGoToTheDiskOrTheKeptHeaderAndTablesOnlyAcceptTheirOwnBytes()
    {
        var disk = FormatViewFiles.RandomDisk((int)OddDisk, 7);
        var backing = FormatViewFiles.Backing(disk);
        var vmdk = FormatViewFiles.Vmdk(backing, OddDisk, Identity);
        long data = vmdk.Layout.DataOffset;

        // Data: grain i at DataOffset + i * 64 KiB is disk byte i * 64 KiB.
        var read = new byte[4096];
        vmdk.Read(data + (200 * 65536) + 100, read);
        Assert.Equal(disk.AsSpan((200 * 65536) + 100, 4096).ToArray(), read);
        var pattern = Enumerable.Repeat((byte)0x3C, 4096).ToArray();
        vmdk.Write(data + (300 * 65536), pattern);
        backing.Read(FormatViewFiles.DiskOffset + (300 * 65536), read);
        Assert.Equal(pattern, read);

        // Header and descriptor: kept byte-exact (QEMU's new CID), also for a view opened later over the same file.
        var cid = "CID=0badcafe\n"u8.ToArray();
        var descriptor = new byte[10240];
        vmdk.Read(512, descriptor);
        int at = descriptor.AsSpan().IndexOf("CID="u8);
        vmdk.Write(512 + at, cid);
        var again = new byte[10240];
        FormatViewFiles.Vmdk(backing, OddDisk, Identity).Read(512, again);
        Assert.Equal(cid, again.AsSpan(at, cid.Length).ToArray());

        // Grain directory and tables: the same bytes are accepted, anything else is refused and nothing changes.
        var gd = new byte[512];
        vmdk.Read(vmdk.Layout.GdOffsetSectors * 512, gd);
        vmdk.Write(vmdk.Layout.GdOffsetSectors * 512, gd);
        var changed = (byte[])gd.Clone();
        changed[0] ^= 0xFF;
        Assert.Throws<NotSupportedException>(() => vmdk.Write(vmdk.Layout.GdOffsetSectors * 512, changed));
        Assert.Throws<NotSupportedException>(() => vmdk.Write(vmdk.Layout.TablesSectors * 512, new byte[] { 1, 2, 3, 4 }));
        Assert.Throws<NotSupportedException>(() => vmdk.Write(vmdk.Layout.DataOffset - 512, new byte[] { 1 }));
        var after = new byte[512];
        vmdk.Read(vmdk.Layout.GdOffsetSectors * 512, after);
        Assert.Equal(gd, after);

        // The last grain's part past the disk reads as zeros and only takes zeros.
        var tail = new byte[vmdk.Length - (data + OddDisk)];
        vmdk.Read(data + OddDisk, tail);
        Assert.All(tail, b => Assert.Equal(0, b));
        vmdk.Write(data + OddDisk, new byte[512]);
        Assert.Throws<NotSupportedException>(() => vmdk.Write(data + OddDisk, new byte[] { 9 }));
    }

    [Fact]
    public void AReadOnlyDiskMakesAReadOnlyVmdk()
    {
        var layout = SparseVmdkLayout.Create(1 << 20);
        var store = new MemorySource(1 << 16, 512);
        var vmdk = new SparseVmdkView(layout, new ZeroSource(1 << 20), new RewritableRegion("vmdk-header", layout.CreateHeaderAndDescriptor(Identity, "r.vmdk"), store, 0));
        Assert.False(vmdk.CanWrite);
        Assert.Throws<NotSupportedException>(() => vmdk.Write(600, new byte[] { 1 }));
    }

    [SkippableFact]
    public void QemuLibvmdkAnd7ZipReadTheFileAsTheDisk()
    {
        Prerequisite.Tool("vmdkinfo", "libvmdk-utils");
        Prerequisite.Tool("7zz", "7zip");
        var disk = FormatViewFiles.RandomDisk((int)OddDisk, 8);
        File.WriteAllBytes(_dir["disk.raw"], disk);
        FormatViewFiles.Save(FormatViewFiles.Vmdk(FormatViewFiles.Backing(disk), OddDisk, Identity, "disk.vmdk"), _dir["disk.vmdk"]);
        string info = ExternalTool.Check("qemu-img", "info", _dir["disk.vmdk"]).StdOut;
        Assert.Contains("file format: vmdk", info, StringComparison.Ordinal);
        Assert.Contains($"({OddDisk} bytes)", info, StringComparison.Ordinal);
        Assert.Contains("No errors were found", ExternalTool.Check("qemu-img", "check", "-f", "vmdk", _dir["disk.vmdk"]).StdOut, StringComparison.Ordinal);
        Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vmdk", "-F", "raw", _dir["disk.vmdk"], _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        string vmdkinfo = ExternalTool.Check("vmdkinfo", _dir["disk.vmdk"]).StdOut;
        Assert.Contains("Monolithic sparse", vmdkinfo, StringComparison.Ordinal);
        Assert.Contains($"({OddDisk} bytes)", vmdkinfo, StringComparison.Ordinal);
        Assert.Contains("Everything is Ok", ExternalTool.Check("7zz", "t", _dir["disk.vmdk"]).StdOut, StringComparison.Ordinal);

        // 7-Zip extracts the disk itself.
        ExternalTool.Check("7zz", "x", "-y", "-o" + _dir["x"], _dir["disk.vmdk"]);
        var extracted = Directory.GetFiles(_dir["x"]).Single();
        Assert.Equal(disk, File.ReadAllBytes(extracted));
    }
}
