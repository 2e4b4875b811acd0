using BackupFuse.Blocks;

namespace BackupFuse.Fuse.Overlay;

/// <summary>An open virtual file: the provider's source plus an O_PATH descriptor of the underlying file for fstat/chmod/utimens on the handle.</summary>
internal sealed class VirtualFileHandle(IBlockSource source, bool writable, int pathFd, string relativePath, VirtualFileInfo info) : IDisposable
{
    public IBlockSource Source { get; } = source;

    public bool Writable { get; } = writable;

    public int PathDescriptor { get; } = pathFd;

    public string RelativePath { get; } = relativePath;

    public VirtualFileInfo Info { get; } = info;

    public void Dispose()
    {
        try
        {
            Source.Dispose();
        }
        finally
        {
            Interop.LibC.close(PathDescriptor);
        }
    }
}
