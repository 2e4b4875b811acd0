using BackupFuse.Core;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Mounting;

/// <summary>
/// One opened stack shared by every open handle of a virtual file. The first open builds it, each open takes a lease
/// (a non-owning view of the stack's served file, so every handle sees the switch to changes on the first write), and
/// the last lease returned disposes it, which closes the chain's files and the changes file, so <c>reset</c>/<c>export</c>
/// work as soon as the VM has closed its disk. Thread-safe.
/// </summary>
public sealed class SharedStack(Func<BackupPointStack> open)
{
    private readonly object _lock = new();
    private BackupPointStack? _stack;
    private int _leases;

    /// <summary>A view of the (possibly new) stack's VHDX; dispose it to return the lease.</summary>
    public IBlockSource Lease()
    {
        lock (_lock)
        {
            _stack ??= open();
            _leases++;
            return new LeasedSource(this, _stack.ServedFile);
        }
    }

    /// <summary>Whether any handle has the stack open.</summary>
    public bool InUse
    {
        get
        {
            lock (_lock)
            {
                return _leases > 0;
            }
        }
    }

    private void Return()
    {
        // Disposed under the lock: a new open must not build a second stack (and find the changes file locked)
        // while the last one is still flushing and closing.
        lock (_lock)
        {
            if (--_leases == 0)
            {
                var stack = _stack;
                _stack = null;
                stack?.Dispose();
            }
        }
    }

    private sealed class LeasedSource(SharedStack share, IBlockSource source) : BlockFilter(source)
    {
        protected override void Dispose(bool disposing)
        {
            // Not base.Dispose: the stack outlives this lease unless it was the last one.
            if (disposing)
            {
                share.Return();
            }
        }
    }
}
