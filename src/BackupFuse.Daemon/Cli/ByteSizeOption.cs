using System.CommandLine;
using System.Globalization;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// An option that takes a byte count with an optional binary unit: <c>512K</c>, <c>256M</c>, <c>1G</c>, <c>64MiB</c>,
/// <c>1048576</c> (K/M/G/T all mean powers of 1024). A bad value is a usage error naming the option.
/// </summary>
public static class ByteSizeOption
{
    /// <summary>An option named <paramref name="name"/> whose value is a byte count (null when absent).</summary>
    public static Option<long?> Create(string name, string description)
    {
        var option = new Option<long?>(name)
        {
            Description = description,
            HelpName = "SIZE",
        };
        option.CustomParser = r =>
        {
            string text = r.Tokens.Count == 1 ? r.Tokens[0].Value : string.Empty;
            if (TryParse(text, out long bytes))
            {
                return bytes;
            }

            r.AddError($"{name} {text}: not a size (use e.g. 64M, 512MiB, 1G)");
            return null;
        };
        return option;
    }

    /// <summary>Parses a byte count with an optional K/M/G/T (or KiB/MiB/GiB/TiB, B) suffix.</summary>
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        text = text.Trim();
        int digits = 0;
        while (digits < text.Length && char.IsAsciiDigit(text[digits]))
        {
            digits++;
        }

        if (digits == 0 || !long.TryParse(text.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out long value))
        {
            return false;
        }

        int shift = text[digits..].ToUpperInvariant() switch
        {
            "" or "B" => 0,
            "K" or "KB" or "KIB" => 10,
            "M" or "MB" or "MIB" => 20,
            "G" or "GB" or "GIB" => 30,
            "T" or "TB" or "TIB" => 40,
            _ => -1,
        };
        if (shift < 0 || value > (long.MaxValue >> shift))
        {
            return false;
        }

        bytes = value << shift;
        return true;
    }
}
