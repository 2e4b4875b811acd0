using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Tests;

/// <summary>Small helpers shared by the image tests: comparing files with sources, flipping bits, rewriting headers.</summary>
internal static class ImageTestKit
{
    /// <summary>Asserts that <paramref name="source"/> reads exactly as the file at <paramref name="expectedPath"/>.</summary>
    public static void AssertSameContent(string expectedPath, BackupFuse.Core.IBlockSource source)
    {
        using var fs = File.OpenRead(expectedPath);
        Assert.Equal(fs.Length, source.Length);
        var want = new byte[4 << 20];
        var got = new byte[4 << 20];
        long pos = 0;
        while (pos < fs.Length)
        {
            int n = (int)Math.Min(want.Length, fs.Length - pos);
            fs.ReadExactly(want, 0, n);
            source.Read(pos, got.AsSpan(0, n));
            if (!want.AsSpan(0, n).SequenceEqual(got.AsSpan(0, n)))
            {
                int at = want.AsSpan(0, n).CommonPrefixLength(got.AsSpan(0, n));
                Assert.Fail($"content differs at disk offset {pos + at}");
            }

            pos += n;
        }
    }

    /// <summary>Flips one bit of the file at <paramref name="offset"/>.</summary>
    public static void FlipBit(string path, long offset, int bit = 3)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset;
        int b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ (1 << bit)));
    }

    /// <summary>Rewrites the header of an image through <paramref name="change"/>, with a correct CRC.</summary>
    public static void RewriteHeader(string path, Func<ImageHeader, ImageHeader> change)
    {
        var header = ImageHeader.Parse(File.ReadAllBytes(path).AsSpan(0, ImageHeader.Size), path);
        var bytes = new byte[ImageHeader.Size];
        change(header).WriteTo(bytes);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Write(bytes);
    }

    /// <summary>A forward-only stream over another (no seeking, no Position): stands in for a pipe.</summary>
    public sealed class ForwardOnlyStream(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    }
}
