using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Vhdx;
using BackupFuse.Vhdx.Differencing;
using BackupFuse.Vhdx.Formats;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The composition root of one backup point: chain -> cache -> (differencing overlay) -> synthesized VHDX. The daemon builds
//   one per open plugin (shared by its handles); the CLI builds one for export/info.
// - The disk below is a BackupPointDisk: one chain read as it is, or volume chains inside a synthesized partition
//   table; everything above it (cache, differencing, VHDX, formats) is the same for both.
// - Without a changes location the stack is the pristine, read-only view. With one whose changes file exists, that
//   file is opened and kept open for as long as the stack lives (which is how reset/export see that it is in use:
//   OpenFileScanner), and the synthesized file routes payload writes to the overlay and every other write to the
//   differencing file's patch store. With one whose changes file does not exist yet and `create` set, the served
//   file is pristine until the first write, which creates the changes (ChangesOnFirstWrite, under its lock) through
//   ChangesLocation's symlink-safe code: a read-only open never leaves a file behind.
// - The VHDX identity is the image's identity, so the synthesized bytes and GUIDs are the same on every run; the
//   differencing file links to the pristine view's DataWriteGuid, which never changes because that view is never
//   written.
// - Owns everything it opened; Dispose flushes the differencing file (its own Dispose empties the log). In the daemon
//   the block cache and the point below it are a lease on a SharedDiskCaches entry (plugins that read as the same
//   disk share one cache): the stack then reads the entry's point and releases the lease instead of disposing them.
// - Formats (the plugin's extension, PluginFormat): ServedFile is a thin view over the served VHDX (Present). The
//   VHDX's layout is fixed, disk byte d is file byte PayloadOffset + d, so the raw disk, the fixed VHD's data and
//   the VMDK's grains map reads AND writes straight onto the VHDX's payload; everything the VHDX does with them (the
//   switch to changes on the first write, the patch store for the rounded-up tail) is unchanged, and reset, export,
//   --volatile and --read-only work alike for every format. The few bytes a hypervisor rewrites in the VHD footer or
//   the VMDK header/descriptor live in a scratch area of the VHDX's reserved header space (ScratchOffset), which only
//   the patch store ever holds.

/// <summary>The opened layers of one backup point, pristine or with its changes.</summary>
public sealed class BackupPointStack : IDisposable
{
    private readonly BackupPointDisk _point;
    private readonly bool _ownsPoint; // false when the point belongs to a shared cache's entry (the lease releases it)
    private readonly IBlockSource _source;
    private volatile DifferencingVhdxOverlay? _overlay;
    private volatile SynthesizedVhdx _vhdx;

    private BackupPointStack(BackupPointDisk point, bool ownsPoint, IBlockSource source, SynthesizedVhdx vhdx, DifferencingVhdxOverlay? overlay)
    {
        _point = point;
        _ownsPoint = ownsPoint;
        _source = source;
        _vhdx = vhdx;
        _overlay = overlay;
        ServedFile = vhdx;
    }

    /// <summary>The chain (newest image first) of the first image.</summary>
    public BackupChain Chain => _point.Primary;

    /// <summary>The chains and the disk they read as.</summary>
    public BackupPointDisk Point => _point;

    /// <summary>The virtual disk (backup plus changes), with the backup's length.</summary>
    public IBlockSource Disk => (IBlockSource?)_overlay ?? _source;

    /// <summary>
    /// The virtual disk exactly as a guest reading <see cref="Vhdx"/> sees it: its virtual size (the disk rounded up to
    /// whole sectors), including what a guest wrote past the backup's last byte. Non-owning.
    /// </summary>
    public IBlockSource GuestDisk => new VhdxDiskView(_vhdx);

    /// <summary>The current VHDX (the writable one once changes exist).</summary>
    public SynthesizedVhdx Vhdx => _vhdx;

    /// <summary>
    /// The file the mount serves: <see cref="Vhdx"/> (or the pristine VHDX that switches to changes on its first write)
    /// presented in the plugin's format.
    /// </summary>
    public IBlockSource ServedFile { get; private set; }

    /// <summary>
    /// Where, in the synthesized VHDX, a format view keeps the bytes hypervisors rewrite (VHD footer, VMDK header and
    /// descriptor): inside the reserved part of the header section (320 KiB to 1 MiB), which no VHDX reader looks at.
    /// </summary>
    public const long ScratchOffset = 512 * 1024;

    /// <summary>The differencing file, when changes exist.</summary>
    public DifferencingVhdxFile? Changes => _overlay?.Child;

    /// <summary>The pristine layout of this backup point (what a differencing child links to).</summary>
    public static VhdxLayout PristineLayout(BackupChain chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        var shape = BackupPointDisk.ShapeOf([chain], null);
        return VhdxLayout.Create(shape.DiskSize, shape.Identity);
    }

    /// <summary>The pristine layout of <paramref name="point"/> (what a differencing child links to).</summary>
    public static VhdxLayout PristineLayout(BackupPointDisk point)
    {
        ArgumentNullException.ThrowIfNull(point);
        return VhdxLayout.Create(point.DiskSize, point.Identity);
    }

    /// <summary>
    /// Builds the stack over <paramref name="chain"/> (which it takes ownership of). <paramref name="changes"/> null:
    /// pristine read-only view. Otherwise the differencing file there is used when it exists; when it does not and
    /// <paramref name="create"/> is set, it is created (with the base-view pointer beside it) on the first write to
    /// <see cref="ServedFile"/>.
    /// </summary>
    /// <param name="chain">The backup point's chain.</param>
    /// <param name="plugin">The plugin (its image, for the base view written beside a new changes file).</param>
    /// <param name="changes">Where the changes live, or null for the pristine view.</param>
    /// <param name="create">Create the changes file on the first write when it does not exist.</param>
    /// <param name="exclusive">Hold the changes file's exclusive lock (the daemon, which writes it).</param>
    /// <param name="format">The format <see cref="ServedFile"/> is presented in.</param>
    /// <param name="fileName">The plugin's file name (named in a VMDK's descriptor).</param>
    public static BackupPointStack Open(BackupChain chain, PluginFile plugin, ChangesLocation? changes, bool create, bool exclusive = false,
        PluginFormat format = PluginFormat.Vhdx, string? fileName = null)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(plugin);
        if (plugin.MoreImages.Count > 0)
        {
            chain.Dispose();
            throw new InvalidDataException($"the plugin names {plugin.Images.Count} volume images; open it with all of them (through the mount)");
        }

        return Open(BackupPointDisk.Create([chain], plugin), plugin, changes, create, exclusive, format, fileName);
    }

    /// <summary>As the other overload, over the disk of <paramref name="point"/> (taken over) instead of one chain.</summary>
    /// <param name="point">The backup point's chains.</param>
    /// <param name="plugin">The plugin (its images, for the base view written beside a new changes file).</param>
    /// <param name="changes">Where the changes live, or null for the pristine view.</param>
    /// <param name="create">Create the changes file on the first write when it does not exist.</param>
    /// <param name="exclusive">Hold the changes file's exclusive lock (the daemon, which writes it).</param>
    /// <param name="format">The format <see cref="ServedFile"/> is presented in.</param>
    /// <param name="fileName">The plugin's file name (named in a VMDK's descriptor).</param>
    /// <param name="sharedCaches">The daemon's shared block caches: plugins reading the same image files as the same disk share one (SharedDiskCaches.ShareKey); null for a cache of its own.</param>
    public static BackupPointStack Open(BackupPointDisk point, PluginFile plugin, ChangesLocation? changes, bool create, bool exclusive = false,
        PluginFormat format = PluginFormat.Vhdx, string? fileName = null, SharedDiskCaches? sharedCaches = null)
    {
        ArgumentNullException.ThrowIfNull(point);
        var stack = OpenVhdx(point, plugin, changes, create, exclusive, sharedCaches);
        try
        {
            stack.ServedFile = Present(format, stack.ServedFile, stack._vhdx.Layout, stack._point.Primary.Top.Header.CreatedUtc, fileName ?? "disk.vmdk");
            return stack;
        }
        catch
        {
            stack.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <paramref name="vhdxFile"/> (a synthesized VHDX of <paramref name="layout"/>, or what serves one) presented in
    /// <paramref name="format"/>. Non-owning. InvalidDataException when the disk is too large for the format.
    /// </summary>
    public static IBlockSource Present(PluginFormat format, IBlockSource vhdxFile, VhdxLayout layout, DateTime createdUtc, string fileName)
    {
        ArgumentNullException.ThrowIfNull(vhdxFile);
        ArgumentNullException.ThrowIfNull(layout);
        if (format == PluginFormat.Vhdx)
        {
            return vhdxFile;
        }

        var disk = new RawDiskView(vhdxFile, layout.PayloadOffset, layout.VirtualDiskSize, layout.Options.LogicalSectorSize);
        switch (format)
        {
            case PluginFormat.Vhd:
                var footer = FixedVhdView.CreateFooter(disk.Length, layout.Identity, createdUtc);
                return new FixedVhdView(disk, Scratch(layout, "vhd-footer", footer, vhdxFile));
            case PluginFormat.Vmdk:
                var vmdk = SparseVmdkLayout.Create(disk.Length);
                return new SparseVmdkView(vmdk, disk, Scratch(layout, "vmdk-header", vmdk.CreateHeaderAndDescriptor(layout.Identity, fileName), vhdxFile));
            default:
                return disk;
        }
    }

    private static RewritableRegion Scratch(VhdxLayout layout, string label, byte[] initial, IBlockSource vhdxFile)
    {
        // The scratch must be reserved zeros of the header section: never payload (its writes would reach the disk), never
        // a structure a VHDX reader uses.
        var e = layout.Extents[layout.FindExtent(ScratchOffset)];
        if (e.Kind != LayoutExtentKind.Zero || e.End < ScratchOffset + RewritableRegion.StoreLength(initial.Length) || ScratchOffset + RewritableRegion.StoreLength(initial.Length) > VhdxLayout.LogOffset)
        {
            throw new InvalidOperationException("the VHDX layout has no reserved space for the format's rewritable bytes");
        }

        return new RewritableRegion(label, initial, vhdxFile, ScratchOffset);
    }

    private static BackupPointStack OpenVhdx(BackupPointDisk chain, PluginFile plugin, ChangesLocation? changes, bool create, bool exclusive, SharedDiskCaches? sharedCaches)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(plugin);
        // One decompressed-chunk cache per open stack (or, in the daemon, per distinct disk: SharedDiskCaches), shared by
        // every handle and by the overlay's read-modify-write; below the overlay, because the chain never changes.
        // (Partitions start at 1 MiB boundaries, so chunks of a volume stay aligned on the synthesized disk.)
        IBlockSource source;
        bool ownsPoint = sharedCaches == null;
        try
        {
            if (sharedCaches != null)
            {
                var lease = sharedCaches.Acquire(chain); // takes the point over; an equal disk's entry may keep another
                chain = lease.Point;
                source = lease;
            }
            else
            {
                source = new CacheFilter(chain.CreateSource(), CacheBudget.Process, cacheBlockSize: chain.Primary.ChunkSize);
            }
        }
        catch
        {
            chain.Dispose();
            throw;
        }

        DifferencingVhdxFile? child = null;
        try
        {
            bool exists = changes?.Exists == true;
            if (changes == null || (!exists && !create))
            {
                return new BackupPointStack(chain, ownsPoint, source, new SynthesizedVhdx(source, chain.Identity), null);
            }

            var layout = PristineLayout(chain);
            if (!exists)
            {
                var pristine = new SynthesizedVhdx(source, chain.Identity, ownsDisk: false);
                var stack = new BackupPointStack(chain, ownsPoint, source, pristine, null);
                var basePlugin = plugin with { Pristine = true }; // every key that shapes the disk, so the base reads the same
                stack.ServedFile = new ChangesOnFirstWrite(pristine, () => stack.Attach(changes.Create(basePlugin, DifferencingParent.FromLayout(layout, changes.BaseViewName))));
                return stack;
            }

            child = changes.Open(layout.DataWriteGuid, layout.VirtualDiskSize, exclusive);
            var overlay = new DifferencingVhdxOverlay(source, child);
            return new BackupPointStack(chain, ownsPoint, source, new SynthesizedVhdx(overlay, chain.Identity, child.Patches), overlay);
        }
        catch
        {
            child?.Dispose();
            source.Dispose();
            if (ownsPoint)
            {
                chain.Dispose();
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            // Each layer once: with changes, the overlay owns the changes file and the cache below it; without, the
            // cache is all there is. The synthesized VHDX files (and ChangesOnFirstWrite) own nothing of their own.
            ((IBlockSource?)_overlay ?? _source).Dispose();
        }
        finally
        {
            if (_ownsPoint)
            {
                _point.Dispose();
            }
        }
    }

    /// <summary>Layers a new changes file over the chain (the first write of a ChangesOnFirstWrite); returns the writable VHDX.</summary>
    private SynthesizedVhdx Attach(DifferencingVhdxFile child)
    {
        try
        {
            var overlay = new DifferencingVhdxOverlay(_source, child);
            var vhdx = new SynthesizedVhdx(overlay, _point.Identity, child.Patches);
            _overlay = overlay;
            _vhdx = vhdx;
            return vhdx;
        }
        catch
        {
            child.Dispose();
            throw;
        }
    }
}
