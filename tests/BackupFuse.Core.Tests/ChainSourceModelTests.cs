using BackupFuse.Core;
using FsCheck;
using FsCheck.Fluent;

namespace BackupFuse.Core.Tests;

/// <summary>
/// Model-based check of the chain merge: random layers of random writes, compared with a byte array that
/// applies the same writes oldest layer first (rounded to the memory layer's 512-byte allocation blocks).
/// </summary>
public sealed class ChainSourceModelTests
{
    private const int Length = 64 * 1024;
    private const int Block = 512;

    [Fact]
    public void ChainReadsEqualTheModel()
    {
        var writeGen =
            from offset in Gen.Choose(0, Length - 1)
            from length in Gen.Choose(1, 5000)
            from value in Gen.Choose(1, 255)
            select (Offset: offset, Length: Math.Min(length, Length - offset), Value: (byte)value);
        var layersGen = Gen.ListOf(Gen.ListOf(writeGen)).Where(l => l.Count is > 0 and <= 5);

        Prop.ForAll(layersGen.ToArbitrary(), layers =>
        {
            var model = new byte[Length];
            var sources = new List<IBlockSource>();
            foreach (var writes in layers)
            {
                var layer = new MemorySource(Length, Block);
                foreach (var w in writes)
                {
                    layer.Write(w.Offset, Enumerable.Repeat(w.Value, w.Length).ToArray());
                }

                // A layer owns whole allocated blocks: copy them over the model.
                var content = layer.ToArray();
                for (int b = 0; b < Length / Block; b++)
                {
                    if (layer.GetExtent(b * Block, Block).Kind == ExtentKind.Data)
                    {
                        Array.Copy(content, b * Block, model, b * Block, Block);
                    }
                }

                sources.Insert(0, layer);
            }

            using var chain = new ChainSource(sources);
            var actual = new byte[Length];
            chain.Read(0, actual);
            return actual.AsSpan().SequenceEqual(model);
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void LayersOfDifferentSizesAreRejected()
    {
        Assert.Throws<InvalidDataException>(() => new ChainSource([new ZeroSource(10), new ZeroSource(11)]));
    }
}
