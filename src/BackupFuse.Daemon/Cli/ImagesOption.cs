using System.CommandLine;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.Daemon.Cli;

/// <summary><c>--images DIR</c> (repeatable) for commands that resolve a chain: where parents are looked up by identity.</summary>
public static class ImagesOption
{
    /// <summary>Creates the option.</summary>
    public static Option<string[]> Create() => new("--images")
    {
        Description = "Directory to look for parent images in, by identity (repeatable; the image's own directory is always searched).",
        Arity = ArgumentArity.OneOrMore,
    };

    /// <summary>A catalog over the given directories plus the directory of <paramref name="imagePath"/>.</summary>
    public static ImageCatalog Catalog(ParseResult parse, Option<string[]> option, string imagePath)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var dirs = new List<string> { Path.GetDirectoryName(Path.GetFullPath(imagePath))! };
        foreach (var d in parse.GetValue(option) ?? [])
        {
            if (!Directory.Exists(d))
            {
                throw new CliError($"--images {d}: no such directory");
            }

            dirs.Add(d);
        }

        return new ImageCatalog(dirs);
    }
}
