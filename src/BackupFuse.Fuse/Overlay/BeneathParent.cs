using System.Runtime.InteropServices;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

/// <summary>
/// The directory holding a path's last component, resolved beneath the served directory
/// (<see cref="UnderlyingDirectory.TryOpenParent"/>), and that last name: the pair every *at() call takes. Dispose
/// closes the descriptor when it was opened for this pair (not the served directory's own), keeping the errno of the
/// call made before it: `using (parent) { return call(parent...); }` reports the call's error, not close's.
/// </summary>
internal readonly unsafe struct BeneathParent(int descriptor, byte* name, bool owned) : IDisposable
{
    /// <summary>The parent directory (O_PATH, or the served directory's descriptor).</summary>
    public int Descriptor { get; } = descriptor;

    /// <summary>The last component, NUL-terminated (points into the caller's path).</summary>
    public byte* Name { get; } = name;

    /// <summary>Closes the parent descriptor if this pair owns it.</summary>
    public void Dispose()
    {
        if (owned)
        {
            int errno = Marshal.GetLastPInvokeError();
            LibC.close(Descriptor);
            Marshal.SetLastPInvokeError(errno);
        }
    }
}
