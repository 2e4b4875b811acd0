using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Plugins;

/// <summary>
/// Opens the backup chain a plugin names, with the daemon's security rule: the image must lie below one of the
/// <c>--images</c> roots. If the named file is gone, the image is looked up by its identity in the roots (backups
/// get moved between media); its identity is always checked against the plugin.
/// </summary>
public sealed class BackupPointOpener(ImageRoots roots, PassphraseSource? passphrase)
{
    private readonly ImageCatalog _catalog = new(roots.Directories);

    /// <summary>The roots images must lie in.</summary>
    public ImageRoots Roots { get; } = roots;

    /// <summary>Opens the chain of <paramref name="plugin"/>; <paramref name="pluginName"/> is used in messages.</summary>
    /// <exception cref="UnauthorizedAccessException">The image lies outside the roots.</exception>
    /// <exception cref="IOException">The image is missing (also not found by identity).</exception>
    /// <exception cref="InvalidDataException">The image or its chain is corrupt, or has another identity.</exception>
    public BackupChain Open(PluginFile plugin, string pluginName)
    {
        ArgumentNullException.ThrowIfNull(plugin);
        string image = plugin.ImagePath;
        if (File.Exists(image))
        {
            if (!Roots.Contains(image))
            {
                throw new UnauthorizedAccessException($"{pluginName}: image {image} lies outside the --images directories ({string.Join(", ", Roots.Directories)})");
            }
        }
        else
        {
            var entry = _catalog.Find(plugin.ImageId);
            if (entry == null)
            {
                _catalog.Refresh();
                entry = _catalog.Find(plugin.ImageId);
            }

            image = entry?.Path ?? throw new IOException($"{pluginName}: image {plugin.ImagePath} is missing, and no image with identity {plugin.ImageId} is in {string.Join(", ", Roots.Directories)}");
        }

        BackupChain chain;
        try
        {
            chain = BackupChain.Open(image, _catalog, passphrase);
        }
        catch (FileNotFoundException e)
        {
            // A missing parent is a broken backup point, not a missing plugin file: report it as an I/O error.
            throw new IOException($"{pluginName}: {e.Message}", e);
        }

        if (chain.Top.Id != plugin.ImageId)
        {
            chain.Dispose();
            throw new InvalidDataException($"{pluginName}: image {image} has identity {chain.Top.Id}, but the plugin names {plugin.ImageId}");
        }

        return chain;
    }
}
