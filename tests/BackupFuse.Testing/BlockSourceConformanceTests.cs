using BackupFuse.Core;
using Xunit;

namespace BackupFuse.Testing;

/// <summary>
/// The contract every layer keeps, run against each layer by inheriting this class (like go-fuse's posixtest).
/// A subclass supplies a source and the bytes it must read as.
/// </summary>
public abstract class BlockSourceConformanceTests
{
    /// <summary>Creates the source under test and the bytes it must read as.</summary>
    protected abstract (IBlockSource Source, byte[] Expected) Create();

    [Fact]
    public void FullReadEqualsExpected()
    {
        var (source, expected) = Create();
        using (source)
        {
            var buffer = new byte[source.Length];
            source.Read(0, buffer);
            Assert.True(expected.AsSpan().SequenceEqual(buffer), "full read differs from the expected bytes");
        }
    }

    [Fact]
    public void UnalignedReadsEqualExpected()
    {
        var (source, expected) = Create();
        using (source)
        {
            var rng = new Random(42);
            for (int i = 0; i < 200; i++)
            {
                long offset = rng.NextInt64(source.Length);
                int length = (int)Math.Min(source.Length - offset, rng.Next(1, 300_000));
                var buffer = new byte[length];
                source.Read(offset, buffer);
                Assert.True(expected.AsSpan((int)offset, length).SequenceEqual(buffer), $"read at {offset}+{length} differs");
            }
        }
    }

    [Fact]
    public void ZeroLengthAndEndOfFileEdgesWork()
    {
        var (source, expected) = Create();
        using (source)
        {
            source.Read(0, Span<byte>.Empty);
            source.Read(source.Length, Span<byte>.Empty);
            var last = new byte[1];
            source.Read(source.Length - 1, last);
            Assert.Equal(expected[^1], last[0]);
        }
    }

    [Fact]
    public void ExtentsTileTheSourceAndZeroExtentsReadAsZeros()
    {
        var (source, expected) = Create();
        using (source)
        {
            long pos = 0;
            while (pos < source.Length)
            {
                var e = source.GetExtent(pos, source.Length - pos);
                Assert.Equal(pos, e.Offset);
                Assert.InRange(e.Length, 1, source.Length - pos);
                if (e.Kind == ExtentKind.Zero)
                {
                    Assert.True(expected.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"zero extent at {e.Offset} holds data");
                }

                pos = e.End;
            }

            var capped = source.GetExtent(0, 1);
            Assert.Equal(1, capped.Length);
        }
    }

    [Fact]
    public void ConcurrentReadsReturnTheRightBytes()
    {
        var (source, expected) = Create();
        using (source)
        {
            Parallel.For(0, 8, t =>
            {
                var rng = new Random(t);
                for (int i = 0; i < 50; i++)
                {
                    long offset = rng.NextInt64(source.Length);
                    int length = (int)Math.Min(source.Length - offset, rng.Next(1, 70_000));
                    var buffer = new byte[length];
                    source.Read(offset, buffer);
                    Assert.True(expected.AsSpan((int)offset, length).SequenceEqual(buffer), $"concurrent read at {offset}+{length} differs");
                }
            });
        }
    }
}
