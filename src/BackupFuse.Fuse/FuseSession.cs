using System.Runtime.InteropServices;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

/// <summary>
/// Per-mount state the static callbacks reach through fuse_get_context()->private_data (a GCHandle to this),
/// so several mounts can live in one process.
/// </summary>
internal sealed unsafe class FuseSession(IFuseFileSystem fileSystem, IFuseLog log, FuseMountOptions options, Action<FuseConnInfo> onInitialized)
{
    public IFuseFileSystem FileSystem { get; } = fileSystem;

    public IFuseLog Log { get; } = log;

    public FuseMountOptions Options { get; } = options;

    /// <summary>Called from init (on a libfuse thread) once the kernel handshake reached us.</summary>
    public void Initialized(in FuseConnInfo conn) => onInitialized(conn);

    /// <summary>The session of the request being served on this thread.</summary>
    public static FuseSession Current
    {
        get
        {
            var ctx = LibFuse.fuse_get_context();
            if (ctx == null || ctx->PrivateData == 0)
            {
                throw new InvalidOperationException("FUSE callback without a session");
            }

            return (FuseSession)GCHandle.FromIntPtr(ctx->PrivateData).Target!;
        }
    }
}
