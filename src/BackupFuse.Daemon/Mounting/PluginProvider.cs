using System.Collections.Concurrent;
using BackupFuse.Core;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Vhdx;
using Serilog;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - Decides which files of the mounted directory are plugins: a regular file named *.vhdx, *.vhd, *.vmdk, *.img or
//   *.raw, at most 64 KiB, whose first line is the plugin magic. Anything else (a real disk image, a file too big,
//   another name) passes through. The extension chooses the format it is presented in (PluginFormat), over the same
//   stack; the size and allocated bytes shown are the chosen format's.
// - One entry per plugin path, keyed by the underlying file's (device, inode, size, mtime): editing or replacing
//   the plugin makes a new entry. Probe needs only sizes: it opens the chain briefly and keeps the numbers.
// - Opening builds the stack (chain, changes, synthesized VHDX) once, shared by every open handle (over the point
//   opened for stat when the open follows within HandOffLifetime, so it is not parsed twice: TimedHandOff); the last close
//   disposes it, which flushes the changes and releases their lock (see SharedStack). A new entry for the same path
//   that serves the same thing (image, owner, mode: a touch of the plugin) reuses the SharedStack, so a changes file
//   never has two writers; otherwise the changes file's flock refuses the second one (ChangesLocation).
// - The key comes from the caller's stat and is checked against an fstat of the descriptor the plugin is read from,
//   so a file swapped in between is never served under the other file's key and owner.
// - Writable mounts keep a plugin's changes in a differencing VHDX under .backupfuse/ next to it (or in the volatile
//   directory), created on the first write. Pristine-view plugins (view = pristine) and read-only mounts never write.
// - A damaged plugin, a dangling one, or one outside the roots is still shown (with the plugin file's own size) so
//   that `ls` works; its open fails with the mapped errno (EIO, or EACCES outside the roots) and one log line.
// - The underlying files are reached only through the UnderlyingDirectory (the mount may cover them): by descriptor,
//   or by its /proc/self/fd path for code that takes paths.
// - The chain of a plugin is opened under the plugin owner's rights (PluginOwner: the owner of the plugin file must be
//   able to read every image himself; root-owned plugins may name any image in the roots), so the owner's uid is
//   part of the key: a chown makes a new entry.
// - A failed entry (missing image, refused, damaged) is not kept for ever: the next Probe/Open after RetryAfter, or
//   after the image catalog changed (inotify on the roots, a rescan), loads it again, so a plugin whose image was
//   missing works once the image is copied in. Successful entries stay (their stack re-opens the chain by identity
//   on each first open, so moved images are found again).
// - Thread-safe: FUSE worker threads call Probe/Open concurrently. Each (path, key) has its own Lazy load, so only
//   lookups of the same plugin wait for each other; no lock is held across the I/O of loading (opening a chain may be
//   slow: a slow disk, a network file system), and one slow plugin never blocks the others.

/// <summary>Presents plugin files as synthesized disk files (VHDX, raw, VHD or VMDK, by extension).</summary>
public sealed class PluginProvider(BackupPointOpener opener, PluginProviderOptions options) : IVirtualFileProvider, IDisposable
{
    /// <summary>How long a failed plugin entry is kept before the next lookup tries again (unless the catalog changed).</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    /// <summary>How long the backup point opened to answer stat waits for the first open to take it over.</summary>
    public static readonly TimeSpan HandOffLifetime = TimeSpan.FromSeconds(5);

    /// <summary>At most this many points opened for stat wait for their first open at once (an `ls -l` of many plugins closes the rest).</summary>
    public const int MaxPendingHandOffs = 4;

    private readonly TimedHandOffs<BackupPointDisk> _handOffs = new(HandOffLifetime, MaxPendingHandOffs);

    private readonly ConcurrentDictionary<string, StackSlot> _stacks = new(StringComparer.Ordinal);
    private readonly SharedDiskCaches _caches = new(); // plugins that read the same image files as the same disk share one block cache
    private readonly ConcurrentDictionary<string, Slot> _entries = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!IsCandidate(relativePath, stat))
        {
            return null;
        }

        var entry = GetEntry(directory, relativePath, stat);
        return entry?.Info;
    }

    /// <inheritdoc/>
    public IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var entry = GetEntry(directory, relativePath, stat) ?? throw new IOException($"{relativePath}: not a plugin file any more");
        if (entry.Failure != null)
        {
            // A new exception each time, so the message names this open; the cause stays attached.
            throw entry.Failure switch
            {
                UnauthorizedAccessException e => new UnauthorizedAccessException(e.Message, e),
                var e => new IOException(e.Message, e),
            };
        }

        try
        {
            return entry.Stack!.Lease();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            Log.Warning("{Plugin}: cannot open: {Reason}", relativePath, e.Message);
            throw;
        }
    }

    private static bool IsCandidate(string relativePath, in UnderlyingFileStat stat) =>
        stat.IsRegularFile && stat.Size <= PluginFile.MaxSize && PluginFormats.FromPath(relativePath) != null;

    private PluginEntry? GetEntry(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
    {
        var key = new PluginKey(stat.Device, stat.Inode, stat.Size, stat.ModifiedSeconds, stat.ModifiedNanoseconds, stat.Uid);
        var statCopy = stat;
        while (true)
        {
            if (_entries.TryGetValue(relativePath, out var slot) && slot.Key == key && !NeedsRetry(slot))
            {
                return Value(relativePath, slot);
            }

            string? previousFailure = slot?.Entry is { IsValueCreated: true, Value.Failure: { } f } ? f.Message : null;
            var fresh = new Slot(key, () => Load(directory, relativePath, key, statCopy, previousFailure));
            if (slot == null ? _entries.TryAdd(relativePath, fresh) : _entries.TryUpdate(relativePath, fresh, slot))
            {
                return Value(relativePath, fresh);
            }
        }
    }

    private PluginEntry? Value(string relativePath, Slot slot)
    {
        try
        {
            var entry = slot.Entry.Value;
            return entry.IsPlugin ? entry : null;
        }
        catch
        {
            // The plugin file itself could not be read: do not keep that, the next lookup tries again.
            _entries.TryRemove(KeyValuePair.Create(relativePath, slot));
            throw;
        }
    }

    private bool NeedsRetry(Slot slot) =>
        slot.Entry.IsValueCreated && slot.Entry.Value.Failure != null &&
        (slot.Entry.Value.Generation != opener.CatalogGeneration || Environment.TickCount64 - slot.Entry.Value.LoadedAt >= (long)RetryAfter.TotalMilliseconds);

    private PluginEntry Load(UnderlyingDirectory directory, string relativePath, PluginKey key, UnderlyingFileStat stat, string? previousFailure)
    {
        long generation = opener.CatalogGeneration;
        long loadedAt = Environment.TickCount64;
        byte[] content;
        using (var handle = directory.OpenRegularFile(relativePath))
        {
            content = new byte[stat.Size];
            int n = RandomAccess.Read(handle, content, 0);
            content = content[..n];

            // The content and the owner must come from the file the key was made of: a file swapped in between the
            // caller's stat and this open would otherwise be served under the other file's owner (and cached so).
            var read = UnderlyingDirectory.GetStat(handle, relativePath);
            if (new PluginKey(read.Device, read.Inode, read.Size, read.ModifiedSeconds, read.ModifiedNanoseconds, read.Uid) != key)
            {
                throw new IOException($"{relativePath}: the plugin file changed while it was read; try again");
            }
        }

        if (!PluginFile.Sniff(content))
        {
            return new PluginEntry(key, IsPlugin: false, default, null, null, generation, loadedAt);
        }

        try
        {
            var plugin = PluginFile.Parse(System.Text.Encoding.UTF8.GetString(content), relativePath);
            bool writable = !options.ReadOnly && !plugin.Pristine;
            VirtualFileInfo info;
            string imagePath;
            var owner = PluginOwner.Of(stat.Uid);
            var format = PluginFormats.FromPath(relativePath) ?? PluginFormat.Vhdx;
            string fileName = Path.GetFileName(relativePath);
            var point = opener.OpenPoint(plugin, relativePath, owner);
            TimedHandOff<BackupPointDisk>? handOff;
            try
            {
                using var vhdx = new SynthesizedVhdx(point.CreateSource(), point.Identity);
                var chain = point.Primary;
                var served = BackupPointStack.Present(format, vhdx, vhdx.Layout, chain.Top.Header.CreatedUtc, fileName);
                info = new VirtualFileInfo(served.Length, VirtualFiles.CountAllocatedBytes(served), writable, stat.ModifiedUtc);
                imagePath = chain.Top.Path;
                Log.Information("{Plugin}: backup point {Image} ({Id}){Volumes}, {Format} of {Size} bytes{Mode}", relativePath, imagePath, chain.Top.Id,
                    point.Shape.Partitions == null ? string.Empty : $", {point.Chains.Count} volume(s) in a synthesized partition table", format.Describe(), served.Length, writable ? string.Empty : ", read-only");
                handOff = _handOffs.Offer(point); // for the first open, which usually follows at once
            }
            catch
            {
                point.Dispose();
                throw;
            }

            var changes = writable ? options.ChangesFor(directory, relativePath) : null;
            uint ownerUid = stat.Uid;
            var identity = new StackIdentity(plugin.DiskKey, plugin.ImageId, plugin.Pristine, ownerUid, writable);
            var stack = StackFor(relativePath, identity, () => BackupPointStack.Open(TakeUnlessCatalogChanged(handOff, generation) ?? opener.OpenPoint(plugin, relativePath, PluginOwner.Of(ownerUid)), plugin, changes, create: true, exclusive: true, format, fileName, _caches));
            return new PluginEntry(key, IsPlugin: true, info, stack, null, generation, loadedAt);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            if (e.Message != previousFailure)
            {
                // A retry that fails the same way stays quiet: a hypervisor polling a broken plugin must not flood the log.
                Log.Warning("{Plugin}: cannot serve this plugin: {Reason}", relativePath, e.Message);
            }

            return new PluginEntry(key, IsPlugin: true, new VirtualFileInfo(stat.Size, stat.Size, Writable: false, stat.ModifiedUtc), null, e, generation, loadedAt);
        }
    }

    /// <summary>
    /// The point opened for stat, unless the image catalog changed since (an image added, moved or removed: the open
    /// looks the chain up again, as it would have without the hand-off).
    /// </summary>
    private BackupPointDisk? TakeUnlessCatalogChanged(TimedHandOff<BackupPointDisk>? handOff, long generation)
    {
        var point = handOff?.Take();
        if (point != null && opener.CatalogGeneration != generation)
        {
            point.Dispose();
            return null;
        }

        return point;
    }

    /// <summary>
    /// The shared stack of the plugin at <paramref name="relativePath"/>: a new version of the same plugin file (a touch,
    /// a rewrite with the same content) keeps the stack its open handles use, so one changes file never gets two
    /// writers. A plugin that now names another image or owner gets a new stack; while the old one is still open, the
    /// changes file's lock refuses the new one with a clear error (ChangesLocation).
    /// </summary>
    private SharedStack StackFor(string relativePath, StackIdentity identity, Func<BackupPointStack> open) =>
        _stacks.AddOrUpdate(
            relativePath,
            _ => new StackSlot(identity, new SharedStack(open)),
            (_, old) => old.Identity == identity ? old : new StackSlot(identity, new SharedStack(open))).Stack;

    /// <inheritdoc/>
    public void Dispose()
    {
        // Open stacks belong to their handles: they are disposed when the last handle is released.
        _handOffs.Dispose();
        _entries.Clear();
        _stacks.Clear();
    }

    /// <summary>What a stack serves: equal identities may share one stack.</summary>
    private readonly record struct StackIdentity(string ImagePath, Guid ImageId, bool Pristine, uint OwnerUid, bool Writable);

    private sealed record StackSlot(StackIdentity Identity, SharedStack Stack);

    private readonly record struct PluginKey(ulong Device, ulong Inode, long Size, long Seconds, long Nanoseconds, uint Uid);

    /// <summary>A failed entry remembers the catalog generation and time of its load, to know when to retry.</summary>
    private sealed record PluginEntry(PluginKey Key, bool IsPlugin, VirtualFileInfo Info, SharedStack? Stack, Exception? Failure, long Generation, long LoadedAt);

    /// <summary>One load of one plugin version; concurrent lookups of it wait on its Lazy, nobody else does.</summary>
    private sealed class Slot(PluginKey key, Func<PluginEntry> load)
    {
        public PluginKey Key { get; } = key;

        public Lazy<PluginEntry> Entry { get; } = new(load, LazyThreadSafetyMode.ExecutionAndPublication);
    }
}

/// <summary>How plugins of one mount behave.</summary>
public sealed class PluginProviderOptions
{
    /// <summary>The mount is read-only: no changes are kept, writes fail with EROFS.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Where to keep changes for --volatile mounts (dropped at unmount); null keeps them beside the plugins.</summary>
    public string? VolatileDirectory { get; init; }

    /// <summary>Where the changes of the plugin at <paramref name="relativePath"/> live.</summary>
    public ChangesLocation ChangesFor(UnderlyingDirectory directory, string relativePath)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (VolatileDirectory != null)
        {
            // One folder per plugin path, so plugins with the same name in different subfolders never collide.
            string folder = Path.Combine(VolatileDirectory, Convert.ToHexString(IdentityHash.HashData(System.Text.Encoding.UTF8.GetBytes(relativePath)))[..16]);
            return ChangesLocation.InDirectory(folder, Path.GetFileNameWithoutExtension(relativePath));
        }

        return ChangesLocation.ForPlugin(directory, relativePath);
    }
}
