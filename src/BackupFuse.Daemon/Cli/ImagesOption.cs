using System.CommandLine;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// <c>--images DIR|s3://BUCKET/PREFIX/|https://HOST/PATH/</c> (repeatable, mixable) for commands that resolve a chain:
/// where parents are looked up by identity.
/// </summary>
public static class ImagesOption
{
    /// <summary>Creates the option.</summary>
    public static Option<string[]> Create() => new("--images")
    {
        Description = "Directory, s3://BUCKET/PREFIX/ or https://HOST/PATH/ to look for parent images in, by identity (repeatable; the image's and the plugin's own directories are always searched). Images found by identity must really lie in a searched directory: a symlink leading elsewhere is skipped.",
        Arity = ArgumentArity.OneOrMore,
    };

    /// <summary>A catalog over the directories of <paramref name="nearPaths"/> (an image, a plugin) plus the given ones.</summary>
    public static ImageCatalog Catalog(ParseResult parse, Option<string[]> option, params string[] nearPaths) =>
        new(Directories(parse, option, nearPaths).Select(d => ImageAddress.IsRemote(d) ? Repository(parse, d) : new LocalDirectoryRepository(d)));

    private static IImageRepository Repository(ParseResult parse, string root)
    {
        try
        {
            return RemoteOptions.Stores(parse).Repository(root);
        }
        catch (FormatException e)
        {
            throw new CliError($"--images {e.Message}");
        }
    }

    /// <summary>
    /// The directories to search: those of <paramref name="nearPaths"/> that exist (as given and, for a symlink, where
    /// it really lies), then the given ones (which must exist).
    /// </summary>
    public static IReadOnlyList<string> Directories(ParseResult parse, Option<string[]> option, params string[] nearPaths)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var local = nearPaths.Where(p => !ImageAddress.IsRemote(p)).ToList();
        var near = local.Select(Path.GetFullPath).Concat(local.Select(ImageRoots.RealPath).OfType<string>());
        var dirs = near.Select(p => Path.GetDirectoryName(p)!).Where(Directory.Exists).ToList();
        dirs.AddRange(nearPaths.Where(ImageAddress.IsRemote).Select(ImageAddress.ContainerOf)); // a remote image's own prefix
        foreach (var d in parse.GetValue(option) ?? [])
        {
            if (ImageAddress.IsRemote(d))
            {
                dirs.Add(d);
                continue;
            }

            if (!Directory.Exists(d))
            {
                throw new CliError($"--images {d}: no such directory");
            }

            dirs.Add(d);
        }

        return [.. dirs.Distinct(StringComparer.Ordinal)];
    }
}
