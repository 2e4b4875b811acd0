using System.Globalization;
using System.Text.Json;
using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests;

/// <summary>The exported synthesized VHDX files checked by independent readers: QEMU, libvhdi, 7-Zip, and ours.</summary>
public sealed class OracleTests(ExportedVhdxFixture fixture) : IClassFixture<ExportedVhdxFixture>
{
    public static TheoryData<string> Cases => ExportedVhdxFixture.Names;

    [Theory]
    [MemberData(nameof(Cases))]
    public void QemuImgInfoSeesAVhdxOfTheRightSize(string name)
    {
        var c = fixture[name];
        var r = ExternalTool.Check("qemu-img", "info", "--output=json", c.VhdxPath);
        using var json = JsonDocument.Parse(r.StdOut);
        Assert.Equal("vhdx", json.RootElement.GetProperty("format").GetString());
        Assert.Equal(c.VirtualSize, json.RootElement.GetProperty("virtual-size").GetInt64());
        Assert.Equal(c.Vhdx.Layout.BlockSize, json.RootElement.GetProperty("cluster-size").GetInt64());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QemuImgCheckFindsNoErrors(string name)
    {
        var r = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", fixture[name].VhdxPath]);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("No errors were found on the image.", r.StdOut);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QemuImgCompareFindsTheRawDisk(string name)
    {
        var c = fixture[name];
        var r = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", c.VhdxPath, c.RawPath]);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("Images are identical.", r.StdOut);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void QemuIoReadsUnalignedRangesCorrectly(string name)
    {
        var c = fixture[name];
        var rng = new Random(name.Length);
        var args = new List<string> { "-r", "-f", "vhdx" };
        long expectedBytes = 0;
        for (int i = 0; i < 12; i++)
        {
            long offset = rng.NextInt64(c.VirtualSize - 1);
            int length = (int)Math.Min(c.VirtualSize - offset, rng.Next(1, 3000));
            args.AddRange(["-c", $"read -v {offset} {length}"]);
            expectedBytes += length;
        }

        // The disk end (covers the rounded-up tail) and, where the disk has them, zero runs checked by pattern.
        args.AddRange(["-c", $"read -v {c.VirtualSize - 700} 700"]);
        expectedBytes += 700;
        if (name == "pattern")
        {
            args.AddRange(["-c", $"read -P 0 {(3L << 20) + 17} 5000", "-c", $"read -P 0 {(6L << 20) + 511} {(1 << 20) - 511}"]);
        }

        args.Add(c.VhdxPath);
        var r = ExternalTool.Run("qemu-io", args);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.DoesNotContain("Pattern verification failed", r.Output);
        Assert.Equal(expectedBytes, CheckHexDump(r.StdOut, c.Expected));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void VhdiInfoReportsAFixedDiskOfTheRightSize(string name)
    {
        var c = fixture[name];
        var r = ExternalTool.Run("vhdiinfo", [c.VhdxPath]);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"({c.VirtualSize} bytes)", r.StdOut);
        Assert.Contains("Fixed", r.StdOut);
        Assert.Contains(c.Vhdx.DataWriteGuid.ToString(), r.StdOut);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void VhdiMountExposesTheSameBytes(string name)
    {
        var c = fixture[name];
        string mountPoint = fixture.Dir["mnt-" + name];
        Directory.CreateDirectory(mountPoint);
        var r = ExternalTool.Run("vhdimount", [c.VhdxPath, mountPoint]);
        Assert.True(r.ExitCode == 0, r.Output);
        try
        {
            var exposed = File.ReadAllBytes(Path.Combine(mountPoint, "vhdi1"));
            Assert.Equal(c.Expected.Length, exposed.Length);
            Assert.True(c.Expected.AsSpan().SequenceEqual(exposed), "vhdimount's vhdi1 differs from the disk");
        }
        finally
        {
            ExternalTool.Check("fusermount3", "-u", mountPoint);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SevenZipTestsEverythingOk(string name)
    {
        var r = ExternalTool.Run("7zz", ["t", fixture[name].VhdxPath]);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("Everything is Ok", r.StdOut);
        Assert.DoesNotContain("Warning", r.Output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Error", r.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OurReaderReadsTheExportedFile(string name)
    {
        var c = fixture[name];
        using var reader = VhdxReader.Open(new FileBlockSource(c.VhdxPath), ownsFile: true);
        Assert.Equal(c.VirtualSize, reader.Length);
        Assert.Equal(2, reader.HeaderSlot);
        Assert.Equal(c.Vhdx.DataWriteGuid, reader.Header.DataWriteGuid);
        Assert.Equal(c.Vhdx.Layout.VirtualDiskId, reader.VirtualDiskId);
        Assert.True(reader.FileParameters.LeaveBlocksAllocated);
        Assert.False(reader.FileParameters.HasParent);
        Assert.Equal(c.Vhdx.Layout.BlockSize, reader.PayloadBlockSize);
        Assert.Equal(512, reader.LogicalSectorSize);
        Assert.Equal(4096, reader.PhysicalSectorSize);
        Assert.All(reader.RegionTable.Entries, e => Assert.True(e.Required));

        var all = new byte[reader.Length];
        reader.Read(0, all);
        Assert.True(c.Expected.AsSpan().SequenceEqual(all), "our reader differs from the disk");
        var extent = reader.GetExtent(0, reader.Length);
        Assert.Equal(new Extent(0, reader.Length, ExtentKind.Data), extent); // fixed: every block FULLY_PRESENT
        for (long k = 0; k < reader.PayloadBlockCount; k++)
        {
            var entry = reader.GetPayloadBlockEntry(k);
            Assert.Equal(PayloadBlockState.FullyPresent, entry.PayloadState);
            Assert.Equal((ulong)c.Vhdx.Layout.BlockFileOffset(k), entry.FileOffset);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ExportIsSparseAndRandomReadsEqualTheFile(string name)
    {
        var c = fixture[name];
        var st = ExternalTool.Check("stat", "-c", "%b %B %s", c.VhdxPath).StdOut.Split(' ', StringSplitOptions.TrimEntries);
        long allocated = long.Parse(st[0], CultureInfo.InvariantCulture) * long.Parse(st[1], CultureInfo.InvariantCulture);
        long size = long.Parse(st[2], CultureInfo.InvariantCulture);
        Assert.Equal(c.Vhdx.Length, size);
        long dataBytes = 0;
        for (long pos = 0; pos < c.Vhdx.Length;)
        {
            var e = c.Vhdx.GetExtent(pos, long.MaxValue);
            dataBytes += e.Kind == ExtentKind.Data ? e.Length : 0;
            pos = e.End;
        }

        Assert.True(allocated <= BlockAlignment.AlignUp(dataBytes, 4096) + (64 * 4096), $"{allocated} bytes allocated for {dataBytes} data bytes");
        if (name == "zero")
        {
            Assert.True(allocated < (1 << 20), $"the zero disk's VHDX allocated {allocated} bytes");
        }

        using var file = new FileBlockSource(c.VhdxPath);
        var rng = new Random(17);
        var boundaries = c.Vhdx.Layout.Extents.ToArray().Select(e => e.FileOffset).ToArray();
        for (int i = 0; i < 300; i++)
        {
            long offset = i % 2 == 0
                ? Math.Clamp(boundaries[rng.Next(boundaries.Length)] + rng.Next(-5000, 5000), 0, c.Vhdx.Length - 1)
                : rng.NextInt64(c.Vhdx.Length);
            int length = (int)Math.Min(c.Vhdx.Length - offset, rng.Next(1, 200_000));
            var fromVhdx = new byte[length];
            var fromFile = new byte[length];
            c.Vhdx.Read(offset, fromVhdx);
            file.Read(offset, fromFile);
            Assert.True(fromFile.AsSpan().SequenceEqual(fromVhdx), $"read at {offset}+{length} differs from the exported file");
        }
    }

    /// <summary>Checks every qemu-io -v hex dump line against <paramref name="expected"/>; returns the bytes seen.</summary>
    private static long CheckHexDump(string output, byte[] expected)
    {
        long seen = 0;
        foreach (var line in output.Split('\n'))
        {
            if (line.Length < 12 || line[8] != ':' || !long.TryParse(line.AsSpan(0, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long address))
            {
                continue;
            }

            var hex = line.AsSpan(11);
            for (int i = 0; i + 1 < hex.Length; i += 3)
            {
                byte b = byte.Parse(hex.Slice(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                Assert.True(expected[address] == b, $"qemu-io read 0x{b:x2} at {address}, expected 0x{expected[address]:x2}");
                address++;
                seen++;
                if (i + 3 >= hex.Length || (hex[i + 2] == ' ' && hex[i + 3] == ' '))
                {
                    break;
                }
            }
        }

        return seen;
    }
}
