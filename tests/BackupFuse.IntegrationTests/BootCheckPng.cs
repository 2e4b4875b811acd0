using System.Buffers.Binary;
using System.IO.Compression;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - A strict PNG reader for the boot-check tests: 8-bit greyscale, RGB or RGBA (what our encoder and Chromium's
//   screenshots write), non-interlaced, all five row filters, every chunk's CRC checked. Pixels come back as RGB.
// - Independent of the product's encoder (it decodes any filter, checks what the encoder never needs to), so a PNG
//   that decodes here is a well-formed file; Chromium rendering the report's thumbnails is the other oracle.

/// <summary>Decodes PNG files into RGB pixels.</summary>
internal sealed class BootCheckPng
{
    private BootCheckPng(int width, int height, byte[] rgb)
    {
        Width = width;
        Height = height;
        Rgb = rgb;
    }

    public int Width { get; }

    public int Height { get; }

    public byte[] Rgb { get; }

    public (byte R, byte G, byte B) this[int x, int y] => (Rgb[((y * Width) + x) * 3], Rgb[(((y * Width) + x) * 3) + 1], Rgb[(((y * Width) + x) * 3) + 2]);

    public static BootCheckPng Decode(byte[] png)
    {
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }))
        {
            throw new InvalidDataException("not a PNG signature");
        }

        int pos = 8, width = 0, height = 0, channels = 0;
        using var idat = new MemoryStream();
        while (true)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + length));
            if (crc != Crc32(png.AsSpan(pos + 4, length + 4)))
            {
                throw new InvalidDataException($"bad CRC in chunk {type}");
            }

            pos += 12 + length;
            if (type == "IHDR")
            {
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                if (data[8] != 8 || data[12] != 0)
                {
                    throw new InvalidDataException("only 8-bit non-interlaced PNGs are read here");
                }

                channels = data[9] switch { 0 => 1, 2 => 3, 6 => 4, 4 => 2, _ => throw new InvalidDataException($"colour type {data[9]} not read here") };
            }
            else if (type == "IDAT")
            {
                idat.Write(data);
            }
            else if (type == "IEND")
            {
                break;
            }
        }

        int stride = width * channels;
        var raw = new byte[height * (stride + 1)];
        using (var z = new ZLibStream(new MemoryStream(idat.ToArray()), CompressionMode.Decompress))
        {
            z.ReadExactly(raw);
        }

        var pixels = new byte[height * stride];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? pixels[(y * stride) + i - channels] : 0;
                int b = y > 0 ? pixels[((y - 1) * stride) + i] : 0;
                int c = i >= channels && y > 0 ? pixels[((y - 1) * stride) + i - channels] : 0;
                int x = raw[(y * (stride + 1)) + 1 + i];
                pixels[(y * stride) + i] = (byte)(filter switch
                {
                    0 => x,
                    1 => x + a,
                    2 => x + b,
                    3 => x + ((a + b) / 2),
                    4 => x + Paeth(a, b, c),
                    _ => throw new InvalidDataException($"bad filter {filter} in row {y}"),
                });
            }
        }

        var rgb = new byte[width * height * 3];
        for (int p = 0; p < width * height; p++)
        {
            for (int k = 0; k < 3; k++)
            {
                rgb[(p * 3) + k] = pixels[(p * channels) + (channels < 3 ? 0 : k)];
            }
        }

        return new BootCheckPng(width, height, rgb);
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte d in data)
        {
            crc ^= d;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
            }
        }

        return ~crc;
    }
}
