using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>The child checked by independent readers that follow its parent locator: libvhdi (vhdiinfo, vhdimount) and 7-Zip.</summary>
public sealed class DifferencingOracleTests
{
    private const long MiB = DiffTestKit.MiB;

    [Fact]
    public void LibvhdiAndSevenZipReadTheChildOverItsParent()
    {
        using var kit = new DiffTestKit((30 * MiB) + 8192, seed: 21, options: new VhdxLayoutOptions { BlockSize = 4 << 20, VirtualSizeAlignment = 4096 });
        var expected = kit.BaseBytes();
        var rng = new Random(5);
        Guid childDataWriteGuid;
        using (var overlay = kit.Overlay(kit.CreateChild()))
        {
            // Unaligned and aligned writes, partial and full blocks, a block filled piece by piece.
            (long Offset, int Length)[] writes =
            [
                (0, 1), (511, 2), (4096, 4096), ((2 * MiB) - 100, 300), (6 * MiB, (int)(2 * MiB)), ((10 * MiB) + 7, 70_000),
                (kit.Parent.VirtualSize - 1000, 1000), ((14 * MiB) + 4096, 512 * 9),
            ];
            foreach (var (offset, length) in writes)
            {
                long end = Math.Min(offset + length, overlay.Length);
                var data = new byte[end - offset];
                rng.NextBytes(data);
                overlay.Write(offset, data);
                data.CopyTo(expected, offset);
            }

            overlay.Flush();
            var all = new byte[overlay.Length];
            overlay.Read(0, all);
            Assert.True(expected.AsSpan(0, all.Length).SequenceEqual(all), "the overlay reads differently from the model");
            childDataWriteGuid = overlay.Child.Header.DataWriteGuid;
        }

        var info = ExternalTool.Run("vhdiinfo", [kit.ChildPath]);
        Assert.True(info.ExitCode == 0, info.Output);
        Assert.Contains("Differential", info.StdOut);
        Assert.True(info.StdOut.Split('\n').Any(l => l.Contains("Parent identifier", StringComparison.Ordinal) && l.Contains(kit.Base.DataWriteGuid.ToString(), StringComparison.Ordinal)), info.StdOut);
        Assert.Contains(childDataWriteGuid.ToString(), info.StdOut);

        string mount = kit.Dir["mnt"];
        Directory.CreateDirectory(mount);
        var m = ExternalTool.Run("vhdimount", [kit.ChildPath, mount]);
        Assert.True(m.ExitCode == 0, m.Output);
        try
        {
            Assert.True(File.Exists(Path.Combine(mount, "vhdi2")), "vhdimount shows no second layer: " + string.Join(",", Directory.GetFiles(mount)));
            var leaf = File.ReadAllBytes(Path.Combine(mount, "vhdi2"));
            Assert.Equal(expected.Length, leaf.Length);
            Assert.True(expected.AsSpan().SequenceEqual(leaf), "vhdimount's leaf (vhdi2) differs from base + writes");
            var parent = File.ReadAllBytes(Path.Combine(mount, "vhdi1"));
            Assert.True(kit.BaseBytes().AsSpan().SequenceEqual(parent), "vhdi1 is not the pristine base");
        }
        finally
        {
            ExternalTool.Check("fusermount3", "-u", mount);
        }

        var seven = ExternalTool.Run("7zz", ["t", kit.ChildPath]);
        Assert.True(seven.ExitCode == 0, seven.Output);
        Assert.Contains("Everything is Ok", seven.StdOut);
        Assert.DoesNotContain("Warning", seven.Output, StringComparison.OrdinalIgnoreCase);

        // 7-Zip extracts the leaf (it follows the locator as well): its bytes are base + writes too.
        string outDir = kit.Dir["7z"];
        var x = ExternalTool.Run("7zz", ["x", "-y", "-o" + outDir, kit.ChildPath]);
        Assert.True(x.ExitCode == 0, x.Output);
        var extracted = Directory.GetFiles(outDir).Single();
        Assert.True(expected.AsSpan().SequenceEqual(File.ReadAllBytes(extracted)), "7-Zip's extracted disk differs from base + writes");
    }
}
