using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.Daemon.Mounting;
using Serilog;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The one place that turns a plugin (or an image named on a command line) into an open chain, for the daemon and
//   the CLI alike, with one rule: every image of the chain must lie below one of the roots, by real path. The
//   daemon's roots are its --images directories; the CLI's are the directories it searches (--images, the plugin's
//   directory, the named image's directory).
// - An image named by path is checked before it is opened (realpath) for a clear early error; a missing one is
//   looked up by identity in the catalog, which admits only files inside the roots (ImageRoots.Refusal), and so are
//   the parents BackupChain finds by identity. After the open, every layer is checked again on the file actually
//   opened (BackupImageFile.Status, from the descriptor): a path swapped after the check cannot slip through.
// - With an owner (the daemon passes the plugin file's owner), every layer must also be readable by that user
//   (PluginOwner): the mount never gives a user a backup he could not read himself.
// - Errors: UnauthorizedAccessException for a refusal (outside the roots, owner may not read, wrong passphrase),
//   IOException for a missing image or parent, InvalidDataException for corrupt data or a wrong identity. Every
//   message starts with the plugin's (or image's) name.
// - Remote images (s3://, http(s)://) follow the same roots rule on their normalized URL: served only when they lie
//   inside one of the remote --images roots (ImageRoots.ContainsRemote, a prefix match; RemoteLocation refuses dot
//   segments and encoded slashes, so no spelling climbs out), checked on the address named and again on every layer
//   opened. A plugin's remote image that is gone is looked up by identity like a local one.
// - The plugin-owner rule cannot apply to a remote object: it has no local owner or mode. Naming a remote root with
//   --images is the administrator's grant of every image below it to every user who can write a plugin into the
//   mounted directory (docs/remote.md says so); give a mount only the remote roots all its users may read.
// - Thread-safe: the catalog is; nothing else changes after construction.

/// <summary>Opens the backup chain a plugin names, under the roots rule and (optionally) the plugin owner's rights.</summary>
public sealed class BackupPointOpener : IDisposable
{
    private readonly PassphraseSource? _passphrase;
    private readonly ImageCatalogWatcher? _watcher;

    /// <summary>
    /// An opener for images below <paramref name="roots"/>; <paramref name="watch"/> keeps its catalog in step with
    /// the roots through inotify (for a long-lived mount).
    /// </summary>
    public BackupPointOpener(ImageRoots roots, PassphraseSource? passphrase, bool watch = false)
    {
        ArgumentNullException.ThrowIfNull(roots);
        Roots = roots;
        _passphrase = passphrase;
        Catalog = new ImageCatalog(roots.Repositories, roots.Refusal);
        _watcher = watch ? new ImageCatalogWatcher(Catalog) : null;
    }

    /// <summary>The roots images must lie in.</summary>
    public ImageRoots Roots { get; }

    /// <summary>The catalog of the roots (admits only files inside them).</summary>
    public ImageCatalog Catalog { get; }

    /// <summary>Changes whenever the catalog may have changed: a lookup that failed before may succeed now.</summary>
    public long CatalogGeneration => Catalog.Generation;

    /// <summary>
    /// Opens the chain of <paramref name="plugin"/>; <paramref name="pluginName"/> is used in messages. With
    /// <paramref name="owner"/>, every image must also be readable by that user.
    /// </summary>
    /// <exception cref="UnauthorizedAccessException">An image lies outside the roots, or the owner may not read it.</exception>
    /// <exception cref="IOException">The image or a parent is missing (also not found by identity), or not a regular file.</exception>
    /// <exception cref="InvalidDataException">The image or its chain is corrupt, or has another identity.</exception>
    public BackupChain Open(PluginFile plugin, string pluginName, PluginOwner? owner = null)
    {
        ArgumentNullException.ThrowIfNull(plugin);
        string image = plugin.ImagePath;
        if (ImageAddress.IsRemote(image) ? RemoteExists(image, pluginName) : UnixFile.TryStat(image) != null)
        {
            RequireInsideRoots(image, pluginName);
        }
        else
        {
            var entry = Catalog.Find(plugin.ImageId);
            if (entry == null)
            {
                var refused = Catalog.RefusedImage(plugin.ImageId);
                throw refused != null
                    ? new UnauthorizedAccessException($"{pluginName}: image {plugin.ImagePath} is missing, and image {plugin.ImageId} is only at {refused.Path}: {refused.Reason}")
                    : new IOException($"{pluginName}: image {plugin.ImagePath} is missing, and no image with identity {plugin.ImageId} is in {string.Join(", ", Roots.Locations)}");
            }

            image = entry.Path;
        }

        var chain = OpenChecked(image, pluginName, owner);
        if (chain.Top.Id != plugin.ImageId)
        {
            chain.Dispose();
            throw new InvalidDataException($"{pluginName}: image {image} has identity {chain.Top.Id}, but the plugin names {plugin.ImageId}");
        }

        return chain;
    }

    /// <summary>
    /// Opens every chain <paramref name="plugin"/> names (one per volume; each under the same rules as
    /// <see cref="Open"/>) and the disk they read as.
    /// </summary>
    /// <exception cref="UnauthorizedAccessException">An image lies outside the roots, or the owner may not read it.</exception>
    /// <exception cref="IOException">An image or a parent is missing, or not a regular file.</exception>
    /// <exception cref="InvalidDataException">An image or its chain is corrupt, has another identity, or cannot be assembled.</exception>
    public BackupPointDisk OpenPoint(PluginFile plugin, string pluginName, PluginOwner? owner = null)
    {
        ArgumentNullException.ThrowIfNull(plugin);
        var chains = new List<BackupChain>();
        try
        {
            foreach (var image in plugin.Images)
            {
                chains.Add(Open(new PluginFile(PluginFile.CurrentVersion, image.Path, image.Id), pluginName, owner));
            }
        }
        catch
        {
            foreach (var c in chains)
            {
                c.Dispose();
            }

            throw;
        }

        return BackupPointDisk.Create(chains, plugin);
    }

    /// <summary>Opens the chain of the image at <paramref name="imagePath"/> (named directly, e.g. on a command line).</summary>
    /// <exception cref="UnauthorizedAccessException">An image lies outside the roots.</exception>
    /// <exception cref="IOException">The image or a parent is missing, or not a regular file.</exception>
    /// <exception cref="InvalidDataException">The image or its chain is corrupt.</exception>
    public BackupChain OpenImage(string imagePath, PluginOwner? owner = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagePath);
        if (ImageAddress.IsRemote(imagePath))
        {
            return RemoteExists(imagePath, imagePath)
                ? OpenChecked(imagePath, imagePath, owner)
                : throw new FileNotFoundException($"{imagePath}: no such object", imagePath);
        }

        if (UnixFile.TryStat(imagePath) == null)
        {
            throw new FileNotFoundException($"{imagePath}: no such file", imagePath);
        }

        RequireInsideRoots(imagePath, imagePath);
        return OpenChecked(imagePath, imagePath, owner);
    }

    /// <summary>
    /// Refuses (one clear message) when the roots hold encrypted images and the passphrase opens none of them, so that
    /// a mount with a wrong or missing passphrase fails at once instead of failing every open later. Roots that also hold
    /// unencrypted images and no passphrase given: a warning, not a refusal (those images are served).
    /// </summary>
    /// <exception cref="PassphraseException">No encrypted image can be opened with the passphrase.</exception>
    /// <exception cref="IOException">The passphrase cannot be read (e.g. its file), and nothing else opened.</exception>
    public void RequireUsablePassphrase()
    {
        var encrypted = Catalog.Entries.Where(e => e.Header.Encryption != EncryptionMethod.None).ToList();
        if (encrypted.Count > 0 && encrypted.Count < Catalog.Entries.Count && (_passphrase == null || !_passphrase.TryLoad(out _)))
        {
            // Mixed roots and no passphrase given: the unencrypted images are served; a wrong passphrase is still refused below.
            Log.Warning("no passphrase is given: the {Count} encrypted images in {Roots} will not be served", encrypted.Count, string.Join(", ", Roots.Locations));
            return;
        }

        Exception? refusal = null;
        foreach (var entry in encrypted)
        {
            try
            {
                using var file = OpenFile(entry.Path);
                return;
            }
            catch (PassphraseException e)
            {
                refusal ??= e;
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                // A corrupt or vanished image says nothing about the passphrase; its own open reports it.
            }
            catch (IOException e)
            {
                refusal ??= e;
            }
        }

        if (refusal is PassphraseException)
        {
            throw new PassphraseException($"the passphrase opens none of the {encrypted.Count} encrypted images in {string.Join(", ", Roots.Locations)}: {refusal.Message}");
        }

        if (refusal != null)
        {
            throw new IOException($"none of the {encrypted.Count} encrypted images in {string.Join(", ", Roots.Locations)} can be opened: {refusal.Message}", refusal);
        }
    }

    /// <summary>
    /// Logs a warning for every remote root that cannot be listed now (store down, credentials or policy refused), so
    /// that a mount started against an unreachable store says so at once; lookups list it again on every miss.
    /// </summary>
    public void WarnAboutUnlistedRemoteRoots()
    {
        var remote = Roots.Repositories.Where(r => r.IsRemote).Select(r => r.Location).ToHashSet(StringComparer.Ordinal);
        foreach (var problem in Catalog.Problems.Where(p => remote.Contains(p.Path)))
        {
            Log.Warning("{Reason}; its images are looked up again on every open", problem.Reason);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _watcher?.Dispose();

    private void RequireInsideRoots(string image, string name)
    {
        if (!Roots.Contains(image))
        {
            throw new UnauthorizedAccessException($"{name}: image {image} lies outside the --images directories ({string.Join(", ", Roots.Locations)})");
        }
    }

    /// <summary>Whether the remote image at <paramref name="address"/> exists (inside the roots; else the roots rule refuses it).</summary>
    private bool RemoteExists(string address, string name)
    {
        RequireInsideRoots(address, name);
        try
        {
            using var probe = Catalog.OpenObject(address);
            return true;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Opens the image at <paramref name="address"/> through the catalog's repositories (local or remote).</summary>
    private BackupImageFile OpenFile(string address)
    {
        var image = Catalog.OpenObject(address);
        try
        {
            return BackupImageFile.Open(image, _passphrase);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private BackupChain OpenChecked(string image, string name, PluginOwner? owner)
    {
        // A first look by path, so that an image the owner may not read is not parsed (nor its problems logged) for
        // him; the check on the descriptors below is the one that counts (a path can change between the two).
        if (owner != null && ImageRoots.RealPath(image) is { } real && UnixFile.TryStat(real) is { } stat &&
            owner.WhyNotReadable(new ImageFileStatus(real, stat)) is { } deniedBeforeOpen)
        {
            throw new UnauthorizedAccessException($"{name}: the plugin's owner cannot read the backup itself: {deniedBeforeOpen}");
        }

        BackupChain chain;
        try
        {
            chain = BackupChain.Open(image, Catalog, _passphrase);
        }
        catch (FileNotFoundException e)
        {
            // A missing parent is a broken backup point, not a missing plugin file: report it as an I/O error, or as a
            // refusal when the parent exists but only outside the roots (e.g. through a symlink in a root).
            var refused = RefusedAncestor(TryReadParentOf(image));
            throw refused != null
                ? new UnauthorizedAccessException($"{name}: {e.Message}; image {refused.ImageId} is only at {refused.Path}: {refused.Reason}", e)
                : new IOException($"{name}: {e.Message}", e);
        }

        try
        {
            foreach (var layer in chain.Layers)
            {
                if (layer.Status is not { } status)
                {
                    // Remote: the roots rule on the URL; the owner rule has nothing to check (see the design notes).
                    if (!Roots.ContainsRemote(layer.Path))
                    {
                        throw new UnauthorizedAccessException($"{name}: image {layer.Path} is refused: it lies outside the --images roots ({string.Join(", ", Roots.Locations)})");
                    }

                    continue;
                }

                string? refusal = Roots.Refusal(status.RealPath);
                if (refusal != null)
                {
                    throw new UnauthorizedAccessException($"{name}: image {layer.Path} is refused: {refusal}");
                }

                string? denied = owner?.WhyNotReadable(status);
                if (denied != null)
                {
                    throw new UnauthorizedAccessException($"{name}: the plugin's owner cannot read the backup itself: {denied}");
                }
            }
        }
        catch
        {
            chain.Dispose();
            throw;
        }

        return chain;
    }

    /// <summary>The parent id of the image at <paramref name="image"/> (where an ancestor walk starts), or null.</summary>
    private Guid? TryReadParentOf(string image)
    {
        try
        {
            using var top = Catalog.OpenObject(image);
            var parent = BackupImageFile.ReadHeader(top).ParentId;
            return parent == Guid.Empty ? null : parent;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>Walks the chain from <paramref name="id"/> through the catalog; the refused file of the first id not found.</summary>
    private CatalogProblem? RefusedAncestor(Guid? id)
    {
        for (int depth = 0; id is { } current && current != Guid.Empty && depth < BackupChain.MaxDepth; depth++)
        {
            var entry = Catalog.Find(current);
            if (entry == null)
            {
                return Catalog.RefusedImage(current);
            }

            id = entry.ParentId;
        }

        return null;
    }
}
