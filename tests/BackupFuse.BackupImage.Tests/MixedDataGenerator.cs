using System.Text;

namespace BackupFuse.BackupImage.Tests;

/// <summary>
/// Deterministic disk content for tests: runs of text-like compressible bytes, random bytes and zeros, each run
/// 4 KiB..1 MiB long, chosen by a seeded RNG. With <c>sparse</c> the zero runs are left as file holes.
/// </summary>
public static class MixedDataGenerator
{
    private static readonly string[] Words =
        ["backup", "chunk", "index", "the", "of", "disk", "sector", "image", "kernel", "block", "data", "parent", "zero", "fuse", "vhdx", "=", "0x", "{", "}", "\n", "\t", "return", "static", "int"];

    /// <summary>Writes <paramref name="length"/> bytes of mixed content to <paramref name="path"/>.</summary>
    public static void WriteFile(string path, long length, int seed, bool sparse = false)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        fs.SetLength(length);
        var buffer = new byte[1 << 20];
        long pos = 0;
        while (pos < length)
        {
            int run = (int)Math.Min(length - pos, 4096 * rng.Next(1, 257));
            int kind = rng.Next(10);
            var span = buffer.AsSpan(0, run);
            if (kind < 2)
            {
                if (!sparse)
                {
                    span.Clear();
                    fs.Position = pos;
                    fs.Write(span);
                }
            }
            else
            {
                if (kind < 7)
                {
                    FillText(rng, span);
                }
                else
                {
                    rng.NextBytes(span);
                }

                fs.Position = pos;
                fs.Write(span);
            }

            pos += run;
        }
    }

    /// <summary>Fills <paramref name="span"/> with word salad (compresses about 3:1 with Deflate).</summary>
    public static void FillText(Random rng, Span<byte> span)
    {
        int i = 0;
        while (i < span.Length)
        {
            var word = Encoding.ASCII.GetBytes(Words[rng.Next(Words.Length)] + " ");
            int n = Math.Min(word.Length, span.Length - i);
            word.AsSpan(0, n).CopyTo(span[i..]);
            i += n;
        }
    }

    /// <summary>Overwrites <paramref name="count"/> scattered runs of <paramref name="runLength"/> bytes with new data.</summary>
    public static void ScatterChanges(string path, int count, int runLength, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        long length = fs.Length;
        var buffer = new byte[runLength];
        for (int i = 0; i < count; i++)
        {
            long offset = rng.NextInt64(length - runLength) & ~511L;
            if (i % 3 == 0)
            {
                Array.Clear(buffer);
            }
            else
            {
                rng.NextBytes(buffer);
            }

            fs.Position = offset;
            fs.Write(buffer);
        }
    }
}
