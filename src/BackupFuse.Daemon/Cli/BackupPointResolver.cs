using System.CommandLine;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Cli;

/// <summary>What a command argument named: a backup image, or a plugin file pointing at one.</summary>
public sealed record BackupPoint(string ImagePath, PluginFile? Plugin, string? PluginPath, bool IsVhdx = false);

/// <summary>Resolves a command argument that may be an image or a plugin file, and opens its chain.</summary>
public static class BackupPointResolver
{
    /// <summary>Reads <paramref name="path"/>: a plugin file names its image, anything else is taken as an image.</summary>
    public static BackupPoint Resolve(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(path))
        {
            // A remote address names an image (plugin files are local).
            try
            {
                return new BackupPoint(BackupFuse.Remote.RemoteLocation.Parse(path).Url, null, null);
            }
            catch (FormatException e)
            {
                throw new CliError(e.Message);
            }
        }

        if (Directory.Exists(path))
        {
            throw new CliError($"{path}: is a directory, not a backup image or plugin file");
        }

        if (UnixFile.TryStat(path) == null)
        {
            throw new CliError($"{path}: no such file");
        }

        Span<byte> head = stackalloc byte[32];
        int n;
        using (var h = UnixFile.OpenRegular(path, out _))
        {
            n = RandomAccess.Read(h, head, 0);
        }

        if (head[..n].StartsWith("vhdxfile"u8))
        {
            // A VHDX: a real one, or a plugin seen through a mount (which reads as the VHDX with its changes).
            return new BackupPoint(path, null, null, IsVhdx: true);
        }

        if (!PluginFile.Sniff(head[..n]))
        {
            return new BackupPoint(path, null, null);
        }

        var plugin = PluginFile.Load(path);
        return new BackupPoint(plugin.ImagePath, plugin, path);
    }

    /// <summary>
    /// Opens the chain of <paramref name="point"/> with the daemon's locator (BackupPointOpener) and its rule: the
    /// images, also those found by identity (a moved image, the parents), must lie in the directories searched, by
    /// real path. Those are the given --images, the plugin's directory and the named image's directory.
    /// </summary>
    public static BackupChain OpenChain(BackupPoint point, ParseResult parse, Option<string[]> images, PassphraseSource passphrase)
    {
        ArgumentNullException.ThrowIfNull(point);
        if (point.IsVhdx)
        {
            throw new CliError($"{point.ImagePath} is a VHDX file, not a backup image or plugin file (is its directory mounted? use the plugin outside the mount)");
        }

        var near = point.PluginPath == null ? new[] { point.ImagePath } : [point.ImagePath, point.PluginPath];
        using var opener = new BackupPointOpener(new ImageRoots(ImagesOption.Directories(parse, images, near), RemoteOptions.Stores(parse)), passphrase);
        try
        {
            return point.Plugin != null ? opener.Open(point.Plugin, point.PluginPath!) : opener.OpenImage(point.ImagePath);
        }
        catch (InvalidDataException) when (point.Plugin == null && PluginFormats.FromPath(point.ImagePath) is { } format)
        {
            // A .img/.vhd/.vmdk plugin seen through its mount reads as its disk, not as the pointer file.
            throw new CliError($"{point.ImagePath} is a {format.Describe()}, not a backup image or plugin file (is its directory mounted? use the plugin outside the mount)");
        }
    }

    /// <summary>
    /// Opens every chain <paramref name="point"/> names (a plugin may name several volume images) under the same rule
    /// as <see cref="OpenChain"/>, and the disk they read as.
    /// </summary>
    public static BackupPointDisk OpenPoint(BackupPoint point, ParseResult parse, Option<string[]> images, PassphraseSource passphrase)
    {
        ArgumentNullException.ThrowIfNull(point);
        var chains = new List<BackupChain> { OpenChain(point, parse, images, passphrase) };
        try
        {
            foreach (var more in point.Plugin?.MoreImages ?? [])
            {
                var chain = OpenChain(new BackupPoint(more.Path, null, point.PluginPath), parse, images, passphrase);
                chains.Add(chain);
                if (chain.Top.Id != more.Id)
                {
                    throw new CliError($"{point.PluginPath}: image {more.Path} has identity {chain.Top.Id}, but the plugin names {more.Id}");
                }
            }
        }
        catch
        {
            chains.ForEach(c => c.Dispose());
            throw;
        }

        try
        {
            return BackupPointDisk.Create(chains, point.Plugin);
        }
        catch (InvalidDataException e)
        {
            throw new CliError($"{point.PluginPath ?? point.ImagePath}: {e.Message}");
        }
    }
}
