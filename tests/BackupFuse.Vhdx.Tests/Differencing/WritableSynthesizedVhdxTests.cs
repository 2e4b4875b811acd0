using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>The synthesized VHDX in writable mode: payload writes to the overlay, everything else to the patch store.</summary>
public sealed class WritableSynthesizedVhdxTests
{
    private const long MiB = DiffTestKit.MiB;

    [Fact]
    public void WhatQemuWritesIsKeptByteExactAcrossReopenAndQemuAcceptsTheResult()
    {
        using var kit = new DiffTestKit((40 * MiB) + 512, seed: 31);
        string qemuFile = kit.Dir["qemu.vhdx"];
        File.Copy(kit.BasePath, qemuFile);
        long p = kit.Base.Layout.PayloadOffset;
        var io = ExternalTool.Run("qemu-io", ["-f", "vhdx",
            "-c", "write -P 0xaa 1M 64k", "-c", "write -P 0x55 3145828 5000", "-c", "write -P 0x66 0 1",
            "-c", $"write -P 0x77 {kit.Disk.Length - 700} 700", "-c", "write -z 8M 1M", "-c", "flush", qemuFile]);
        Assert.True(io.ExitCode == 0, io.Output);
        var pristine = File.ReadAllBytes(kit.BasePath);
        var qemu = File.ReadAllBytes(qemuFile);
        Assert.Equal(pristine.Length, qemu.Length);

        // Replay QEMU's changes as byte runs (unaligned where QEMU's were), like the FUSE layer would pass them on.
        var runs = DiffRuns(pristine, qemu);
        Assert.Contains(runs, r => r.Offset < (1 << 20)); // QEMU rewrote the headers
        Assert.Contains(runs, r => r.Offset >= p);
        using (var child = kit.CreateChild())
        using (var vhdx = new SynthesizedVhdx(kit.Overlay(child), kit.Base.Layout.Identity, child.Patches, kit.Base.Layout.Options))
        {
            Assert.True(vhdx.CanWrite);
            foreach (var (offset, length) in runs)
            {
                vhdx.Write(offset, qemu.AsSpan((int)offset, length));
            }

            vhdx.Flush();
            Assert.True(qemu.AsSpan().SequenceEqual(Read(vhdx)), "the writable VHDX differs from QEMU's file before reopen");
            var stats = child.GetStatistics();
            Assert.True(stats.PatchedPages >= 2, $"{stats.PatchedPages} patched pages");
            Assert.True(stats.ChangedBytes >= (64 * 1024) + 5000, $"{stats.ChangedBytes} changed bytes");
        }

        using (var child = kit.OpenChild())
        using (var vhdx = new SynthesizedVhdx(kit.Overlay(child), kit.Base.Layout.Identity, child.Patches, kit.Base.Layout.Options))
        {
            Assert.True(qemu.AsSpan().SequenceEqual(Read(vhdx)), "the writable VHDX differs from QEMU's file after reopen");
            string exported = kit.Dir["exported.vhdx"];
            SynthesizedVhdxExport.ToSparseFile(vhdx, exported);
            Assert.True(qemu.AsSpan().SequenceEqual(File.ReadAllBytes(exported)), "the sparse export differs from QEMU's file");
            var check = ExternalTool.Run("qemu-img", ["check", "-f", "vhdx", exported]);
            Assert.True(check.ExitCode == 0, check.Output);
            var read = ExternalTool.Run("qemu-io", ["-r", "-f", "vhdx", "-c", "read -P 0xaa 1M 64k", "-c", "read -P 0x55 3145828 5000",
                "-c", "read -P 0x66 0 1", "-c", $"read -P 0x77 {kit.Disk.Length - 700} 700", "-c", "read -P 0 8M 1M", exported]);
            Assert.True(read.ExitCode == 0 && !read.Output.Contains("verification failed", StringComparison.Ordinal), read.Output);

            // QEMU writes again on top of the exported file; the same replay keeps matching.
            var io2 = ExternalTool.Run("qemu-io", ["-f", "vhdx", "-c", "write -P 0x12 100k 3k", exported]);
            Assert.True(io2.ExitCode == 0, io2.Output);
            var again = File.ReadAllBytes(exported);
            foreach (var (offset, length) in DiffRuns(qemu, again))
            {
                vhdx.Write(offset, again.AsSpan((int)offset, length));
            }

            Assert.True(again.AsSpan().SequenceEqual(Read(vhdx)), "second QEMU session differs");
        }

        // The child alone is still a valid differencing file for libvhdi.
        var info = ExternalTool.Run("vhdiinfo", [kit.ChildPath]);
        Assert.True(info.ExitCode == 0 && info.StdOut.Contains("Differential", StringComparison.Ordinal), info.Output);
    }

    [Fact]
    public void PristineModeStaysReadOnly()
    {
        using var kit = new DiffTestKit(8 * MiB, exportBase: false);
        Assert.False(kit.Base.CanWrite);
        Assert.Null(kit.Base.Patches);
        Assert.Throws<NotSupportedException>(() => kit.Base.Write(0, new byte[1]));
    }

    [Fact]
    public void WritesPastTheEndGrowTheFileAndThePatchStoreHasABound()
    {
        using var kit = new DiffTestKit(8 * MiB, exportBase: false);
        long baseLength = kit.Base.Length;
        using (var child = kit.CreateChild())
        using (var vhdx = new SynthesizedVhdx(kit.Overlay(child), kit.Base.Layout.Identity, child.Patches, kit.Base.Layout.Options))
        {
            vhdx.Write(baseLength + 5000, new byte[] { 1, 2, 3 });
            Assert.Equal(baseLength + 5003, vhdx.Length);
            Assert.Equal(new Extent(baseLength, 4096, ExtentKind.Zero), vhdx.GetExtent(baseLength, long.MaxValue));
            Assert.Equal(ExtentKind.Data, vhdx.GetExtent(baseLength + 4096, long.MaxValue).Kind);

            // The whole header section, log and metadata region (768 pages) fit; one more page does not.
            var big = new byte[3 * MiB];
            new Random(1).NextBytes(big);
            var e = Assert.Throws<IOException>(() => vhdx.Write(0, big));
            Assert.Contains("no room for more header-area changes", e.Message);
            vhdx.Write(0, big.AsSpan(0, (int)(3 * MiB) - 4096)); // 767 pages + the one past the end = 768
            Assert.Throws<IOException>(() => vhdx.Write((3 * MiB) - 4096, new byte[1]));
            Assert.Equal(768, child.GetStatistics().PatchedPages);
            Assert.True(big.AsSpan(0, (int)(3 * MiB) - 4096).SequenceEqual(Read(vhdx).AsSpan(0, (int)(3 * MiB) - 4096)));
        }

        using (var child = kit.OpenChild())
        using (var vhdx = new SynthesizedVhdx(kit.Overlay(child), kit.Base.Layout.Identity, child.Patches, kit.Base.Layout.Options))
        {
            Assert.Equal(baseLength + 5003, vhdx.Length);
            var tail = new byte[5003];
            vhdx.Read(baseLength, tail);
            Assert.Equal(new byte[] { 1, 2, 3 }, tail[5000..]);
            Assert.True(tail.AsSpan(0, 5000).IndexOfAnyExcept((byte)0) < 0);
            var big = new byte[3 * MiB];
            new Random(1).NextBytes(big);
            Assert.True(big.AsSpan(0, (int)(3 * MiB) - 4096).SequenceEqual(Read(vhdx).AsSpan(0, (int)(3 * MiB) - 4096)));
        }
    }

    internal static byte[] Read(IBlockSource source)
    {
        var all = new byte[source.Length];
        source.Read(0, all);
        return all;
    }

    /// <summary>Maximal runs where <paramref name="after"/> differs from <paramref name="before"/> (same length).</summary>
    internal static List<(long Offset, int Length)> DiffRuns(byte[] before, byte[] after)
    {
        var runs = new List<(long, int)>();
        int i = 0;
        while (i < before.Length)
        {
            int start = i + before.AsSpan(i).CommonPrefixLength(after.AsSpan(i));
            if (start >= before.Length)
            {
                break;
            }

            int end = start;
            while (end < before.Length && before[end] != after[end])
            {
                end++;
            }

            runs.Add((start, end - start));
            i = end;
        }

        return runs;
    }
}
