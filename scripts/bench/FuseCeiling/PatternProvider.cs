using BackupFuse.Core;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Fuse.Tests;

namespace BackupFuse.Bench;

// Design notes: makes exactly one file virtual (FileName, at the top of the mounted directory), LENGTH bytes of
// FastPatternSource; every other file passes through. Stateless, so safe from any FUSE worker thread.

/// <summary>Serves <see cref="FileName"/> as a read-only synthetic file of a given length.</summary>
internal sealed class PatternProvider(long length) : IVirtualFileProvider
{
    /// <summary>The one virtual file.</summary>
    public const string FileName = "ceiling.vhdx";

    /// <inheritdoc/>
    public VirtualFileInfo? Probe(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat) =>
        relativePath == FileName ? new VirtualFileInfo(length, length, Writable: false) : null;

    /// <inheritdoc/>
    public IBlockSource Open(UnderlyingDirectory directory, string relativePath, in UnderlyingFileStat stat, bool write) =>
        new FastPatternSource(length);
}
