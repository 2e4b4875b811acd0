using BackupFuse.Core;
using BackupFuse.Testing;

namespace BackupFuse.Vhdx.Tests;

/// <summary>One synthesized VHDX exported to a sparse file next to the raw disk it presents.</summary>
public sealed record ExportedCase(string Name, SynthesizedVhdx Vhdx, string VhdxPath, string RawPath, byte[] Expected)
{
    /// <summary>The virtual disk size the VHDX must report.</summary>
    public long VirtualSize => Vhdx.Layout.VirtualDiskSize;
}

/// <summary>
/// Builds the disks once per test class and exports each as disk.raw and disk.vhdx (sparse): a patterned disk with
/// zero runs whose size is not a block multiple, a pure-zero disk, a disk whose size is not a sector multiple
/// (1 MiB blocks), and a disk with an odd sector count synthesized with 4 KiB size alignment (for 7-Zip).
/// </summary>
public sealed class ExportedVhdxFixture : IDisposable
{
    private const long MiB = 1L << 20;
    private readonly Dictionary<string, ExportedCase> _cases = [];

    public ExportedVhdxFixture()
    {
        Dir = new TempDirectory("bf-vhdx");
        Add("pattern", new PatternSource((77 * MiB) + 2048, seed: 9, zeroBlock: (int)MiB, zeroEvery: 3), null);
        Add("zero", new ZeroSource((6 * MiB) + 1024), null);
        Add("odd-bytes", new PatternSource((3 * MiB) + 777, seed: 4, zeroBlock: 65536, zeroEvery: 5), new VhdxLayoutOptions { BlockSize = (int)MiB });
        Add("odd-sectors", new PatternSource((5 * MiB) + 512, seed: 6), new VhdxLayoutOptions { VirtualSizeAlignment = 4096 });
    }

    /// <summary>Names of the cases, for theories.</summary>
    public static TheoryData<string> Names => new() { "pattern", "zero", "odd-bytes", "odd-sectors" };

    /// <summary>The working directory.</summary>
    public TempDirectory Dir { get; }

    /// <summary>The case called <paramref name="name"/>.</summary>
    public ExportedCase this[string name] => _cases[name];

    public void Dispose()
    {
        foreach (var c in _cases.Values)
        {
            c.Vhdx.Dispose();
        }

        Dir.Dispose();
    }

    private void Add(string name, IBlockSource disk, VhdxLayoutOptions? options)
    {
        var vhdx = new SynthesizedVhdx(disk, VhdxLayout.DeriveGuid(Guid.Empty, "test/" + name), options);
        var expected = new byte[vhdx.Layout.VirtualDiskSize];
        disk.Read(0, expected.AsSpan(0, (int)disk.Length));
        string raw = Dir[name + ".raw"];
        string file = Dir[name + ".vhdx"];
        SynthesizedVhdxExport.ToSparseFile(disk, raw);
        SynthesizedVhdxExport.ToSparseFile(vhdx, file);
        _cases[name] = new ExportedCase(name, vhdx, file, raw, expected);
    }
}
