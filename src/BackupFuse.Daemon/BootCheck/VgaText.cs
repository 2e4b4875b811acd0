using System.Text;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - A VGA text-mode screen (what SeaBIOS, GRUB's text menu and rescue shell, MBR boot code and a Linux console on
//   vgacon show) keeps its characters in video memory at 0xB8000: 80x25 cells of (character, attribute). QMP's
//   pmemsave copies them to a file, which is read here: the words on the screen, without OCR.
// - Only the printable ASCII part of code page 437 is kept; other glyphs (box drawing, accents) become spaces.
// - Meaningless on a graphics screen: the caller asks only when the screendump has text-mode dimensions.

/// <summary>Decodes the VGA text buffer.</summary>
public static class VgaText
{
    /// <summary>Guest-physical address of the colour text buffer.</summary>
    public const long Address = 0xB8000;

    /// <summary>Bytes of an 80x25 screen.</summary>
    public const int Size = 80 * 25 * 2;

    /// <summary>The screen's lines (trailing blanks and empty last lines removed), joined with newlines.</summary>
    public static string Decode(ReadOnlySpan<byte> buffer)
    {
        var lines = new List<string>();
        var line = new StringBuilder(80);
        for (int row = 0; row < 25 && (row + 1) * 160 <= buffer.Length; row++)
        {
            line.Clear();
            for (int col = 0; col < 80; col++)
            {
                byte c = buffer[(row * 160) + (col * 2)];
                line.Append(c is >= 0x20 and < 0x7F ? (char)c : ' ');
            }

            lines.Add(line.ToString().TrimEnd());
        }

        while (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        return string.Join('\n', lines);
    }
}
