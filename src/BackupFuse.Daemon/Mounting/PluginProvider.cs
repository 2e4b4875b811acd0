using System.Collections.Concurrent;
using BackupFuse.Blocks;
using BackupFuse.Daemon.Plugins;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Vhdx;
using Serilog;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - Decides which files of the mounted directory are plugins: a regular file named *.vhdx, at most 64 KiB, whose
//   first line is the plugin magic. Anything else (a real VHDX, a file too big, another name) passes through.
// - One entry per plugin path, keyed by the underlying file's (device, inode, size, mtime): editing or replacing
//   the plugin makes a new entry. Probe needs only sizes: it opens the chain briefly and keeps the numbers.
// - Opening builds the stack (chain, changes, synthesized VHDX) once, shared by every open handle; the last close
//   disposes it, which flushes the changes and releases their lock (see SharedStack).
// - Writable mounts keep a plugin's changes in a differencing VHDX under .backupfuse/ next to it (or in the volatile
//   directory), created on the first write. Pristine-view plugins (view = pristine) and read-only mounts never write.
// - A damaged plugin, a dangling one, or one outside the roots is still shown (with the plugin file's own size) so
//   that `ls` works; its open fails with the mapped errno (EIO, or EACCES outside the roots) and one log line.
// - The underlying files are reached only through the UnderlyingDirectory (the mount may cover them): by descriptor,
//   or by its /proc/self/fd path for code that takes paths.
// - Thread-safe: FUSE worker threads call Probe/Open concurrently; entries are created under one lock.

/// <summary>Presents plugin files as synthesized VHDX files.</summary>
public sealed class PluginProvider(BackupPointOpener opener, PluginProviderOptions options) : IVirtualFileProvider, IDisposable
{
    private readonly ConcurrentDictionary<string, PluginEntry> _entries = new(StringComparer.Ordinal);

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
        stat.IsRegularFile && stat.Size <= PluginFile.MaxSize && relativePath.EndsWith(".vhdx", StringComparison.OrdinalIgnoreCase);

    private PluginEntry? GetEntry(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
    {
        var key = new PluginKey(stat.Device, stat.Inode, stat.Size, stat.ModifiedSeconds, stat.ModifiedNanoseconds);
        if (_entries.TryGetValue(relativePath, out var existing) && existing.Key == key)
        {
            return existing.IsPlugin ? existing : null;
        }

        lock (_entries)
        {
            if (_entries.TryGetValue(relativePath, out existing) && existing.Key == key)
            {
                return existing.IsPlugin ? existing : null;
            }

            var created = Load(directory, relativePath, key, stat);
            _entries[relativePath] = created;
            return created.IsPlugin ? created : null;
        }
    }

    private PluginEntry Load(UnderlyingDirectory directory, string relativePath, PluginKey key, UnderlyingFileStat stat)
    {
        byte[] content;
        using (var handle = directory.OpenFile(relativePath, FileAccess.Read))
        {
            content = new byte[stat.Size];
            int n = RandomAccess.Read(handle, content, 0);
            content = content[..n];
        }

        if (!PluginFile.Sniff(content))
        {
            return new PluginEntry(key, IsPlugin: false, default, null, null);
        }

        try
        {
            var plugin = PluginFile.Parse(System.Text.Encoding.UTF8.GetString(content), relativePath);
            bool writable = !options.ReadOnly && !plugin.Pristine;
            VirtualFileInfo info;
            string imagePath;
            using (var chain = opener.Open(plugin, relativePath))
            using (var vhdx = new SynthesizedVhdx(chain.CreateSource(), chain.Top.Id))
            {
                info = new VirtualFileInfo(vhdx.Length, VirtualFiles.CountAllocatedBytes(vhdx), writable, stat.ModifiedUtc);
                imagePath = chain.Top.Path;
                Log.Information("{Plugin}: backup point {Image} ({Id}), VHDX of {Size} bytes{Mode}", relativePath, imagePath, chain.Top.Id, vhdx.Length, writable ? string.Empty : ", read-only");
            }

            var changes = writable ? options.ChangesFor(directory, relativePath) : null;
            var stack = new SharedStack(() => BackupPointStack.Open(opener.Open(plugin, relativePath), plugin, changes, create: true));
            return new PluginEntry(key, IsPlugin: true, info, stack, null);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            Log.Warning("{Plugin}: cannot serve this plugin: {Reason}", relativePath, e.Message);
            return new PluginEntry(key, IsPlugin: true, new VirtualFileInfo(stat.Size, stat.Size, Writable: false, stat.ModifiedUtc), null, e);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        // Open stacks belong to their handles: they are disposed when the last handle is released.
        _entries.Clear();
    }

    private readonly record struct PluginKey(ulong Device, ulong Inode, long Size, long Seconds, long Nanoseconds);

    private sealed record PluginEntry(PluginKey Key, bool IsPlugin, VirtualFileInfo Info, SharedStack? Stack, Exception? Failure);
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
            string folder = Path.Combine(VolatileDirectory, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(relativePath)))[..16]);
            return ChangesLocation.InDirectory(folder, Path.GetFileNameWithoutExtension(relativePath));
        }

        return ChangesLocation.ForPlugin(directory, relativePath);
    }
}
