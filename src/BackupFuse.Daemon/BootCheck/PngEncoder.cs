using System.Buffers.Binary;
using System.IO.Compression;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - The smallest PNG writer that every browser and viewer reads: 8-bit truecolour (colour type 2), no interlace,
//   filter "Up" on every row (screens are mostly rows equal to the one above, which Up turns into zeros), one IDAT
//   chunk compressed with zlib (System.IO.Compression.ZLibStream), chunk CRCs with the PNG CRC-32 computed here (no extra package).
// - Also writes a scaled-down copy (nearest neighbour) for the report's thumbnails, so the HTML page stays light.

/// <summary>Writes RGB screens as PNG files.</summary>
public static class PngEncoder
{
    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>Encodes <paramref name="image"/> as a PNG file.</summary>
    public static byte[] Encode(ScreenImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return Encode(image.Width, image.Height, image.Rgb.Span);
    }

    /// <summary>Encodes <paramref name="image"/> scaled (nearest neighbour) to at most <paramref name="maxWidth"/> pixels wide.</summary>
    public static byte[] EncodeThumbnail(ScreenImage image, int maxWidth)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Width <= maxWidth)
        {
            return Encode(image);
        }

        int w = maxWidth;
        int h = Math.Max(1, (int)((long)image.Height * maxWidth / image.Width));
        var src = image.Rgb.Span;
        var dst = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            int sy = (int)((long)y * image.Height / h);
            for (int x = 0; x < w; x++)
            {
                int sx = (int)((long)x * image.Width / w);
                src.Slice(((sy * image.Width) + sx) * 3, 3).CopyTo(dst.AsSpan(((y * w) + x) * 3));
            }
        }

        return Encode(w, h, dst);
    }

    private static byte[] Encode(int width, int height, ReadOnlySpan<byte> rgb)
    {
        int stride = width * 3;
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            var row = new byte[stride + 1];
            row[0] = 2; // filter Up
            for (int y = 0; y < height; y++)
            {
                var cur = rgb.Slice(y * stride, stride);
                for (int i = 0; i < stride; i++)
                {
                    row[i + 1] = y == 0 ? cur[i] : (byte)(cur[i] - rgb[((y - 1) * stride) + i]);
                }

                z.Write(row);
            }
        }

        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // truecolour
        WriteChunk(png, "IHDR", ihdr);
        WriteChunk(png, "IDAT", raw.ToArray());
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        s.Write(word);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        uint crc = Crc(Crc(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        s.Write(word);
    }

    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
