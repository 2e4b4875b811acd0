using BackupFuse.BackupImage.Reading;
using BackupFuse.Blocks;
using BackupFuse.Daemon.Plugins;
using BackupFuse.Vhdx;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - The composition root of one backup point: chain -> cache -> (differencing overlay) -> synthesized VHDX. The daemon builds
//   one per open plugin (shared by its handles); the CLI builds one for export/info.
// - Without a changes location the stack is the pristine, read-only view. With one, the differencing file is opened
//   (created on first need) and kept open for as long as the stack lives (which is how reset/export see that it is in
//   use: OpenFileScanner), and the synthesized file
//   routes payload writes to the overlay and every other write to the differencing file's patch store.
// - The VHDX identity is the image's identity, so the synthesized bytes and GUIDs are the same on every run; the
//   differencing file links to the pristine view's DataWriteGuid, which never changes because that view is never
//   written.
// - Owns everything it opened; Dispose flushes the differencing file (its own Dispose empties the log).

/// <summary>The opened layers of one backup point, pristine or with its changes.</summary>
public sealed class BackupPointStack : IDisposable
{
    private readonly BackupChain _chain;

    private BackupPointStack(BackupChain chain, IBlockSource disk, SynthesizedVhdx vhdx, DifferencingVhdxFile? changes)
    {
        _chain = chain;
        Disk = disk;
        Vhdx = vhdx;
        Changes = changes;
    }

    /// <summary>The chain (newest image first).</summary>
    public BackupChain Chain => _chain;

    /// <summary>The virtual disk as the guest sees it (backup plus changes).</summary>
    public IBlockSource Disk { get; }

    /// <summary>The VHDX file the mount shows (writable when changes are kept).</summary>
    public SynthesizedVhdx Vhdx { get; }

    /// <summary>The differencing file, when changes are kept.</summary>
    public DifferencingVhdxFile? Changes { get; }

    /// <summary>The pristine layout of this backup point (what a differencing child links to).</summary>
    public static VhdxLayout PristineLayout(BackupChain chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        return VhdxLayout.Create(chain.DiskSize, chain.Top.Id);
    }

    /// <summary>
    /// Builds the stack over <paramref name="chain"/> (which it takes ownership of). <paramref name="changes"/> null:
    /// pristine read-only view. Otherwise the differencing file there is used, and created (with the base-view
    /// pointer beside it) when missing and <paramref name="create"/> is set.
    /// </summary>
    public static BackupPointStack Open(BackupChain chain, PluginFile plugin, ChangesLocation? changes, bool create)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(plugin);
        // One decompressed-chunk cache per open stack, shared by every handle and by the overlay's read-modify-write;
        // below the overlay, because the chain never changes.
        IBlockSource source = new CacheFilter(chain.CreateSource(), CacheBudget.Process, cacheBlockSize: chain.ChunkSize);
        DifferencingVhdxFile? child = null;
        try
        {
            if (changes == null || (!changes.Exists && !create))
            {
                return new BackupPointStack(chain, source, new SynthesizedVhdx(source, chain.Top.Id), null);
            }

            var layout = PristineLayout(chain);
            if (!changes.Exists)
            {
                Directory.CreateDirectory(changes.StateDirectory);
                new PluginFile(PluginFile.CurrentVersion, plugin.ImagePath, plugin.ImageId, Pristine: true).Save(changes.BaseViewFile);
                DifferencingVhdxFile.Create(changes.ChangesFile, DifferencingParent.FromLayout(layout, changes.BaseViewName)).Dispose();
            }

            child = DifferencingVhdxFile.Open(changes.ChangesFile, layout.DataWriteGuid, layout.VirtualDiskSize);
            var overlay = new DifferencingVhdxOverlay(source, child);
            var vhdx = new SynthesizedVhdx(overlay, chain.Top.Id, child.Patches);
            return new BackupPointStack(chain, overlay, vhdx, child);
        }
        catch
        {
            child?.Dispose();
            source.Dispose();
            chain.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            Vhdx.Dispose();
        }
        finally
        {
            _chain.Dispose();
        }
    }
}
