using BackupFuse.Blocks;

namespace BackupFuse.Daemon.Mounting;

/// <summary>
/// One source shared by every open handle of a virtual file: each open takes a lease (a non-owning view), and
/// the source and its owner are disposed when the last lease is gone and the share was retired (the plugin file
/// changed, or the mount ends).
/// </summary>
public sealed class SharedSource(IBlockSource source, IDisposable? owner = null)
{
    private readonly object _lock = new();
    private int _leases;
    private bool _retired;
    private bool _disposed;

    /// <summary>The shared source (do not dispose it; take a lease).</summary>
    public IBlockSource Source { get; } = source;

    /// <summary>A view of the source that releases its lease when disposed.</summary>
    public IBlockSource Lease()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _leases++;
            return new LeasedSource(this);
        }
    }

    /// <summary>No new leases are expected; dispose once the open ones are returned.</summary>
    public void Retire()
    {
        lock (_lock)
        {
            _retired = true;
            DisposeIfUnused();
        }
    }

    private void Return()
    {
        lock (_lock)
        {
            _leases--;
            DisposeIfUnused();
        }
    }

    private void DisposeIfUnused()
    {
        if (_retired && _leases == 0 && !_disposed)
        {
            _disposed = true;
            Source.Dispose();
            owner?.Dispose();
        }
    }

    private sealed class LeasedSource(SharedSource share) : BlockFilter(share.Source)
    {
        protected override void Dispose(bool disposing)
        {
            // Not base.Dispose: the shared source outlives this lease.
            if (disposing)
            {
                share.Return();
            }
        }
    }
}
