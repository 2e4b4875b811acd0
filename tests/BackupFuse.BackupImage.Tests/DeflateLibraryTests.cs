using BackupFuse.BackupImage.Format;
using Xunit;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// libdeflate and the runtime's zlib-ng must read each other's chunks: an image written on a machine without
/// libdeflate is read on one with it, and the other way round.
/// </summary>
public sealed class DeflateLibraryTests
{
    private const int Chunk = 65536;

    [Fact]
    public void LibDeflateIsInstalledWhereTheTestsRun()
    {
        // install-deps.sh installs libdeflate0; without it every other test here would only exercise zlib-ng.
        Assert.True(LibDeflate.Available, "libdeflate.so.0 did not load: " + ChunkCompressor.Implementation);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(6)]
    [InlineData(9)]
    public void EachLibraryReadsWhatTheOtherWrote(int level)
    {
        foreach (var chunk in Chunks())
        {
            var byZlib = new byte[Chunk];
            var byLib = new byte[Chunk];
            Assert.True(ChunkCompressor.TryCompressWithZlib(chunk, byZlib, level, out int zn));
            Assert.True(ChunkCompressor.TryCompressWithLibDeflate(chunk, byLib, level, out int ln));

            var back = new byte[Chunk];
            Assert.True(LibDeflate.TryDecompress(byZlib.AsSpan(0, zn), back));
            Assert.True(back.AsSpan().SequenceEqual(chunk));
            back.AsSpan().Clear();
            Assert.True(ChunkCompressor.TryDecompressWithZlib(byLib, 0, ln, back));
            Assert.True(back.AsSpan().SequenceEqual(chunk));
        }
    }

    [Fact]
    public void LibDeflateRejectsWrongLengthsTrailingBytesAndGarbage()
    {
        var chunk = Chunks().First();
        var packed = new byte[Chunk + 16];
        Assert.True(ChunkCompressor.TryCompressWithLibDeflate(chunk, packed, 1, out int n));
        Assert.False(LibDeflate.TryDecompress(packed.AsSpan(0, n), new byte[Chunk - 1]), "too little room must fail");
        Assert.False(LibDeflate.TryDecompress(packed.AsSpan(0, n), new byte[Chunk + 1]), "a short stream must fail");
        Assert.False(LibDeflate.TryDecompress(packed.AsSpan(0, n + 3), new byte[Chunk]), "bytes after the stream must fail");
        Assert.False(LibDeflate.TryDecompress(packed.AsSpan(0, n - 1), new byte[Chunk]), "a truncated stream must fail");
        var garbage = new byte[n];
        new Random(3).NextBytes(garbage);
        Assert.False(LibDeflate.TryDecompress(garbage, new byte[Chunk]));
    }

    [Fact]
    public void IncompressibleChunksAreReportedForRawStorage()
    {
        var noise = new byte[Chunk];
        new Random(4).NextBytes(noise);
        Assert.False(ChunkCompressor.TryCompressWithLibDeflate(noise, new byte[Chunk], 1, out _));
        Assert.False(ChunkCompressor.TryCompressWithZlib(noise, new byte[Chunk], 1, out _));
    }

    private static IEnumerable<byte[]> Chunks()
    {
        var rng = new Random(11);
        var text = new byte[Chunk];
        for (int i = 0; i < Chunk; i++)
        {
            text[i] = (byte)"the quick brown fox jumps over the lazy dog\n"[rng.Next(44)];
        }

        yield return text;
        var mixed = new byte[Chunk];
        rng.NextBytes(mixed.AsSpan(0, Chunk / 2));
        yield return mixed;
        var runs = new byte[Chunk];
        for (int i = 0; i < Chunk; i++)
        {
            runs[i] = (byte)(i / 1000);
        }

        yield return runs;
    }
}
