namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - One screen as QEMU's screendump writes it: a binary PPM (P6, maxval 255), kept as packed RGB bytes. Only what the
//   verdict needs is computed here: is it one colour (a blank screen), how much of it differs from another screen
//   (has it stopped changing), and how many colours it holds. No OCR: text on a text-mode screen is read from video
//   memory instead (VgaText).
// - Immutable after loading; safe to share between threads.

/// <summary>An RGB screen image (from a PPM screendump).</summary>
public sealed class ScreenImage
{
    private ScreenImage(int width, int height, byte[] rgb)
    {
        Width = width;
        Height = height;
        Rgb = rgb;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Pixels, row by row, 3 bytes (R, G, B) each.</summary>
    public ReadOnlyMemory<byte> Rgb { get; }

    /// <summary>Whether every pixel has the same colour (a blank screen, whatever its colour).</summary>
    public bool IsSingleColour
    {
        get
        {
            var p = Rgb.Span;
            for (int i = 3; i < p.Length; i += 3)
            {
                if (p[i] != p[0] || p[i + 1] != p[1] || p[i + 2] != p[2])
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// Whether this is a QEMU VGA text-mode screen (80x25 characters of 9x16 or 8x16 pixels): then its characters can
    /// be read from video memory.
    /// </summary>
    public bool LooksLikeTextMode => Height == 400 && Width is 720 or 640;

    /// <summary>Parses a binary PPM (P6, maxval 255) as QEMU's screendump writes it.</summary>
    public static ScreenImage FromPpm(byte[] ppm, string name)
    {
        ArgumentNullException.ThrowIfNull(ppm);
        int pos = 0;
        string magic = Token(ppm, ref pos, name);
        int width = int.Parse(Token(ppm, ref pos, name), System.Globalization.CultureInfo.InvariantCulture);
        int height = int.Parse(Token(ppm, ref pos, name), System.Globalization.CultureInfo.InvariantCulture);
        string max = Token(ppm, ref pos, name);
        pos++; // the single whitespace byte after maxval
        if (magic != "P6" || max != "255" || width <= 0 || height <= 0 || width > 16384 || height > 16384)
        {
            throw new InvalidDataException($"{name}: not a P6 PPM with maxval 255 ({magic} {width}x{height} max {max})");
        }

        int bytes = checked(width * height * 3);
        if (ppm.Length - pos < bytes)
        {
            throw new InvalidDataException($"{name}: PPM of {width}x{height} is truncated ({ppm.Length - pos} of {bytes} pixel bytes)");
        }

        return new ScreenImage(width, height, ppm.AsSpan(pos, bytes).ToArray());
    }

    /// <summary>
    /// The fraction (0..1) of pixels that differ from <paramref name="other"/>; 1 when the sizes differ (a mode switch
    /// is a change).
    /// </summary>
    public double DifferenceFrom(ScreenImage? other)
    {
        if (other == null || other.Width != Width || other.Height != Height)
        {
            return 1;
        }

        var a = Rgb.Span;
        var b = other.Rgb.Span;
        long differing = 0;
        for (int i = 0; i < a.Length; i += 3)
        {
            if (a[i] != b[i] || a[i + 1] != b[i + 1] || a[i + 2] != b[i + 2])
            {
                differing++;
            }
        }

        return (double)differing / (Width * (long)Height);
    }

    /// <summary>The number of distinct colours (counting stops at <paramref name="limit"/>).</summary>
    public int CountColours(int limit = 4096)
    {
        var seen = new HashSet<int>();
        var p = Rgb.Span;
        for (int i = 0; i < p.Length && seen.Count < limit; i += 3)
        {
            seen.Add((p[i] << 16) | (p[i + 1] << 8) | p[i + 2]);
        }

        return seen.Count;
    }

    private static string Token(byte[] data, ref int pos, string name)
    {
        while (pos < data.Length)
        {
            if (data[pos] == '#')
            {
                while (pos < data.Length && data[pos] != '\n')
                {
                    pos++;
                }
            }
            else if (data[pos] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                pos++;
            }
            else
            {
                break;
            }
        }

        int start = pos;
        while (pos < data.Length && data[pos] is not ((byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t'))
        {
            pos++;
        }

        if (pos == start || pos - start > 16)
        {
            throw new InvalidDataException($"{name}: not a PPM file (bad header)");
        }

        return System.Text.Encoding.ASCII.GetString(data, start, pos - start);
    }
}
