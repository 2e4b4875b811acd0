using System.Collections.Concurrent;
using BackupFuse.Daemon.Plugins;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Vhdx;
using Serilog;
using BackupFuse.Blocks;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - Decides which files of the mounted directory are plugins: a regular file named *.vhdx, at most 64 KiB, whose
//   first line is the plugin magic. Anything else (a real VHDX, a file too big, another name) passes through.
// - One entry per plugin path, keyed by the underlying file's (device, inode, size, mtime): editing or replacing
//   the plugin makes a new entry; the old one is retired and disposed when its last open handle closes.
// - An entry holds the opened chain and the SynthesizedVhdx over it, shared by every open handle through leases
//   (one chain, one set of index caches, whatever the number of readers).
// - A damaged plugin, a dangling one, or one outside the roots is still shown (with the plugin file's own size)
//   so that `ls` works; its open fails with the mapped errno (EIO, or EACCES outside the roots) and one log line.
// - The underlying files are read only through the UnderlyingDirectory (the mount may cover them).
// - Thread-safe: FUSE worker threads call Probe/Open concurrently; entries are created under a per-path lock.

/// <summary>Presents plugin files as synthesized VHDX files.</summary>
public sealed class PluginProvider(BackupPointOpener opener) : IVirtualFileProvider, IDisposable
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

        return entry.Share!.Lease();
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
            existing?.Share?.Retire();
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

        var plainInfo = new VirtualFileInfo(stat.Size, stat.Size, Writable: false, stat.ModifiedUtc);
        try
        {
            var plugin = PluginFile.Parse(System.Text.Encoding.UTF8.GetString(content), relativePath);
            var chain = opener.Open(plugin, relativePath);
            SynthesizedVhdx vhdx;
            try
            {
                vhdx = new SynthesizedVhdx(chain.CreateSource(), chain.Top.Id);
            }
            catch
            {
                chain.Dispose();
                throw;
            }

            var info = new VirtualFileInfo(vhdx.Length, VirtualFiles.CountAllocatedBytes(vhdx), Writable: false, stat.ModifiedUtc);
            Log.Information("{Plugin}: backup point {Image} ({Id}), VHDX of {Size} bytes", relativePath, chain.Top.Path, chain.Top.Id, vhdx.Length);
            return new PluginEntry(key, IsPlugin: true, info, new SharedSource(vhdx, chain), null);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            Log.Warning("{Plugin}: cannot serve this plugin: {Reason}", relativePath, e.Message);
            return new PluginEntry(key, IsPlugin: true, plainInfo, null, e);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_entries)
        {
            foreach (var entry in _entries.Values)
            {
                entry.Share?.Retire();
            }

            _entries.Clear();
        }
    }

    private readonly record struct PluginKey(ulong Device, ulong Inode, long Size, long Seconds, long Nanoseconds);

    private sealed record PluginEntry(PluginKey Key, bool IsPlugin, VirtualFileInfo Info, SharedSource? Share, Exception? Failure);
}
