using System.Buffers.Binary;
using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Formats;

namespace BackupFuse.Vhdx.Tests.Formats;

/// <summary>The fixed VHD: footer fields and checksum, CHS geometry against qemu-img's, reads/writes, and real readers.</summary>
public sealed class FixedVhdTests : IDisposable
{
    private static readonly Guid Identity = Guid.Parse("0b7e2c55-61a4-4a4e-9d0f-3c1a2b4d5e6f");
    private static readonly DateTime Created = new(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);
    private readonly TempDirectory _dir = new("bfvhd");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void FooterFieldsAndChecksumFollowTheSpecification()
    {
        const long size = 20000256;
        var footer = FixedVhdView.CreateFooter(size, Identity, Created);
        Assert.Equal(512, footer.Length);
        Assert.Equal("conectix"u8.ToArray(), footer[..8]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(8)));
        Assert.Equal(0x00010000u, BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(12)));
        Assert.Equal(ulong.MaxValue, BinaryPrimitives.ReadUInt64BigEndian(footer.AsSpan(16)));
        Assert.Equal((uint)(Created - new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc)).TotalSeconds, BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(24)));
        Assert.Equal((ulong)size, BinaryPrimitives.ReadUInt64BigEndian(footer.AsSpan(40)));
        Assert.Equal((ulong)size, BinaryPrimitives.ReadUInt64BigEndian(footer.AsSpan(48)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(60)));

        // Checksum: one's complement of the byte sum with the checksum field taken as zero, computed here independently.
        uint sum = 0;
        for (int i = 0; i < 512; i++)
        {
            sum += i is >= 64 and < 68 ? 0u : footer[i];
        }

        Assert.Equal(~sum, BinaryPrimitives.ReadUInt32BigEndian(footer.AsSpan(64)));
        Assert.True(VhdFooter.TryRead(footer, out var parsed));
        Assert.Equal(VhdFooter.FixedDisk, parsed.DiskType);
        footer[100] ^= 1;
        Assert.False(VhdFooter.TryRead(footer, out _));
    }

    [Fact]
    public void TheUniqueIdIsTheSameOnEveryRunAndDiffersPerBackupPoint()
    {
        var a = FixedVhdView.CreateFooter(1 << 20, Identity, Created);
        Assert.Equal(a, FixedVhdView.CreateFooter(1 << 20, Identity, Created));
        var b = FixedVhdView.CreateFooter(1 << 20, Guid.NewGuid(), Created);
        Assert.NotEqual(a.AsSpan(68, 16).ToArray(), b.AsSpan(68, 16).ToArray());
        Assert.NotEqual(Guid.Empty, new Guid(a.AsSpan(68, 16), bigEndian: true));
    }

    [Theory]
    [InlineData(1L << 20)]
    [InlineData(10L << 20)]
    [InlineData(100L << 20)]
    [InlineData(1L << 30)]
    [InlineData(40L << 30)]
    public void TheGeometryIsQemuImgs(long size)
    {
        // qemu-img rounds a new fixed VHD to a size its CHS geometry covers exactly and writes that geometry: ours for
        // that size must be the same (both follow the specification's algorithm).
        string path = _dir[$"q{size}.vhd"];
        ExternalTool.Check("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", path, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var footer = new byte[512];
        using (var f = File.OpenRead(path))
        {
            f.Seek(-512, SeekOrigin.End);
            f.ReadExactly(footer);
        }

        long qemuSize = (long)BinaryPrimitives.ReadUInt64BigEndian(footer.AsSpan(48));
        var expected = new VhdGeometry(BinaryPrimitives.ReadUInt16BigEndian(footer.AsSpan(56)), footer[58], footer[59]);
        Assert.Equal(expected, VhdGeometry.FromTotalSectors(qemuSize / 512));
    }

    [Fact]
    public void TheGeometryIsClampedAtItsMaximum()
    {
        Assert.Equal(new VhdGeometry(65535, 16, 255), VhdGeometry.FromTotalSectors(VhdGeometry.MaxSectors + 12345));
    }

    [Fact]
    public void DisksBeyond2040GiBAreRefusedWithAClearMessage()
    {
        FixedVhdView.CheckDiskSize(FixedVhdView.MaxDiskSize);
        var e = Assert.Throws<InvalidDataException>(() => FixedVhdView.CheckDiskSize(FixedVhdView.MaxDiskSize + 512));
        Assert.Contains("2040 GiB", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadsTheDiskThenTheFooterAndKeepsAFooterRewriteAcrossReopens()
    {
        var disk = FormatViewFiles.RandomDisk(1 << 20, 3);
        var backing = FormatViewFiles.Backing(disk);
        var vhd = FormatViewFiles.Vhd(backing, disk.Length, Identity, Created);
        Assert.Equal(disk.Length + 512, vhd.Length);
        var all = new byte[vhd.Length];
        vhd.Read(0, all);
        Assert.Equal(disk, all[..disk.Length]);
        Assert.Equal(FixedVhdView.CreateFooter(disk.Length, Identity, Created), all[disk.Length..]);

        // A write across the end of the disk and into the footer: disk bytes land in the backing file at the disk's
        // offset, footer bytes are kept and read back, also by a new view over the same backing file.
        var data = Enumerable.Repeat((byte)0x5A, 1024).ToArray();
        vhd.Write(disk.Length - 512, data);
        var onDisk = new byte[512];
        backing.Read(FormatViewFiles.DiskOffset + disk.Length - 512, onDisk);
        Assert.All(onDisk, b => Assert.Equal(0x5A, b));
        var reopened = FormatViewFiles.Vhd(backing, disk.Length, Identity, Created);
        var footer = new byte[512];
        reopened.Read(disk.Length, footer);
        Assert.All(footer, b => Assert.Equal(0x5A, b));
    }

    [SkippableFact]
    public void QemuLibvhdiAnd7ZipReadTheFileAsTheDisk()
    {
        Prerequisite.Tool("vhdiinfo", "libvhdi-utils");
        Prerequisite.Tool("7zz", "7zip");
        var disk = FormatViewFiles.RandomDisk(3 * 1024 * 1024 + 7 * 512, 4);
        File.WriteAllBytes(_dir["disk.raw"], disk);
        FormatViewFiles.Save(FormatViewFiles.Vhd(FormatViewFiles.Backing(disk), disk.Length, Identity, Created), _dir["disk.vhd"]);
        Assert.Contains($"({disk.Length} bytes)", ExternalTool.Check("qemu-img", "info", "-f", "vpc", _dir["disk.vhd"]).StdOut, StringComparison.Ordinal);
        Assert.Contains("Images are identical", ExternalTool.Check("qemu-img", "compare", "-f", "vpc", "-F", "raw", _dir["disk.vhd"], _dir["disk.raw"]).StdOut, StringComparison.Ordinal);
        var info = ExternalTool.Check("vhdiinfo", _dir["disk.vhd"]).StdOut;
        Assert.Contains("Fixed", info, StringComparison.Ordinal);
        Assert.Contains($"({disk.Length} bytes)", info, StringComparison.Ordinal);
        Assert.Contains("Everything is Ok", ExternalTool.Check("7zz", "t", _dir["disk.vhd"]).StdOut, StringComparison.Ordinal);
    }
}
