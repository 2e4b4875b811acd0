using System.Collections.Concurrent;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// Test provider: a "*.vhdx" whose content starts with <see cref="Marker"/> is virtual; the rest of the first line
/// holds key=value settings: size=N, kind=pattern|sparse|fast|memory, fail=none|open-io|open-deny|probe-io.
/// "memory" files share one writable MemorySource per file (handed out through a non-owning wrapper).
/// </summary>
internal sealed class MarkerFileProvider : IVirtualFileProvider
{
    public const string Marker = "BFTEST-VIRTUAL";
    public const int SparseBlock = 64 * 1024;

    private readonly ConcurrentDictionary<(ulong, ulong, long, long, long), Settings?> _cache = new();
    private readonly ConcurrentDictionary<string, MemorySource> _memory = new();

    public int Probes;
    public int ContentReads;

    public static string Content(long size, string kind = "pattern", string fail = "none") => $"{Marker} size={size} kind={kind} fail={fail}\n";

    public static PatternSource Pattern(long size) => new(size, seed: 7);

    public static PatternSource Sparse(long size) => new(size, seed: 7, zeroBlock: SparseBlock, zeroEvery: 2);

    public MemorySource MemoryOf(string relativePath) => _memory[relativePath];

    public VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat)
    {
        Interlocked.Increment(ref Probes);
        if (!relativePath.EndsWith(".vhdx", StringComparison.Ordinal))
        {
            return null;
        }

        var key = (stat.Device, stat.Inode, stat.Size, stat.ModifiedSeconds, stat.ModifiedNanoseconds);
        var settings = _cache.GetOrAdd(key, _ => Parse(directory, relativePath));
        if (settings is not { } s)
        {
            return null;
        }

        if (s.Fail == "probe-io")
        {
            throw new InvalidDataException($"{relativePath}: damaged test plugin");
        }

        long allocated = s.Kind == "sparse" ? VirtualFiles.CountAllocatedBytes(Sparse(s.Size)) : s.Size;
        return new VirtualFileInfo(s.Size, allocated, Writable: s.Kind == "memory");
    }

    public IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write)
    {
        var s = Parse(directory, relativePath) ?? throw new InvalidDataException($"{relativePath} is no longer a test plugin");
        return s.Fail switch
        {
            "open-io" => throw new InvalidDataException($"{relativePath}: the image it names is corrupt"),
            "open-deny" => throw new UnauthorizedAccessException($"{relativePath}: points outside the allowed roots"),
            _ => s.Kind switch
            {
                "sparse" => Sparse(s.Size),
                "fast" => new FastPatternSource(s.Size),
                "memory" => new NonOwning(_memory.GetOrAdd(relativePath, _ => new MemorySource(s.Size))),
                _ => Pattern(s.Size),
            },
        };
    }

    private Settings? Parse(UnderlyingDirectory directory, string relativePath)
    {
        Interlocked.Increment(ref ContentReads);
        using var handle = directory.OpenFile(relativePath, FileAccess.Read);
        Span<byte> head = stackalloc byte[256];
        int n = RandomAccess.Read(handle, head, 0);
        string text = Encoding.UTF8.GetString(head[..n]);
        if (!text.StartsWith(Marker, StringComparison.Ordinal))
        {
            return null;
        }

        var fields = text.Split('\n')[0].Split(' ').Skip(1).Select(f => f.Split('=')).ToDictionary(f => f[0], f => f[1]);
        return new Settings(long.Parse(fields["size"], System.Globalization.CultureInfo.InvariantCulture), fields["kind"], fields["fail"]);
    }

    private readonly record struct Settings(long Size, string Kind, string Fail);

    private sealed class NonOwning(IBlockSource next) : BlockFilter(next)
    {
        protected override void Dispose(bool disposing)
        {
        }
    }
}
