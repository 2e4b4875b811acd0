using BackupFuse.Core;
using BackupFuse.Testing;

namespace BackupFuse.Core.Tests;

public sealed class MemorySourceConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var pattern = new PatternSource(3 * 1024 * 1024 + 123, seed: 7);
        var bytes = new byte[pattern.Length];
        pattern.Read(0, bytes);
        return (new MemorySource(bytes), bytes);
    }
}

public sealed class PatternSourceConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var pattern = new PatternSource(2 * 1024 * 1024 + 5, seed: 3, zeroBlock: 65536, zeroEvery: 3);
        var bytes = new byte[pattern.Length];
        pattern.Read(0, bytes);
        return (pattern, bytes);
    }
}

public sealed class FileBlockSourceConformanceTests : BlockSourceConformanceTests, IDisposable
{
    private readonly TempDirectory _dir = new();

    protected override (IBlockSource Source, byte[] Expected) Create()
    {
        var pattern = new PatternSource(1024 * 1024 + 77, seed: 11);
        var bytes = new byte[pattern.Length];
        pattern.Read(0, bytes);
        string path = _dir["disk.raw"];
        File.WriteAllBytes(path, bytes);
        return (new FileBlockSource(path), bytes);
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>A three-layer chain: base pattern, a middle layer with some blocks, a top layer with others.</summary>
public sealed class ChainSourceConformanceTests : BlockSourceConformanceTests
{
    protected override (IBlockSource Source, byte[] Expected) Create() => ChainFixture.Build(seed: 5);
}

internal static class ChainFixture
{
    public static (IBlockSource Source, byte[] Expected) Build(int seed)
    {
        const int length = 4 * 1024 * 1024;
        var rng = new Random(seed);
        var bottom = new PatternSource(length, seed: (ulong)seed, zeroBlock: 4096 * 8, zeroEvery: 4);
        var middle = new MemorySource(length);
        var top = new MemorySource(length);
        foreach (var layer in new[] { middle, top })
        {
            for (int i = 0; i < 40; i++)
            {
                int offset = rng.Next(length - 70_000);
                var data = new byte[rng.Next(1, 70_000)];
                rng.NextBytes(data);
                layer.Write(offset, data);
            }
        }

        // The expected image is built independently of ChainSource: paint each layer's allocated extents
        // oldest first. Memory layers own whole 4 KiB blocks, so unwritten bytes of a touched block are zeros.
        var result = new byte[length];
        var chain = new ChainSource([top, middle, bottom]);
        foreach (var layer in new IBlockSource[] { bottom, middle, top })
        {
            long pos = 0;
            while (pos < length)
            {
                var e = layer.GetExtent(pos, length - pos);
                if (e.Kind == ExtentKind.Data)
                {
                    layer.Read(e.Offset, result.AsSpan((int)e.Offset, (int)e.Length));
                }
                else if (e.Kind == ExtentKind.Zero)
                {
                    result.AsSpan((int)e.Offset, (int)e.Length).Clear();
                }

                pos = e.End;
            }
        }

        return (chain, result);
    }
}
