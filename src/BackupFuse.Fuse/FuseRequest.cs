using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

/// <summary>Who issued the request being served (valid only inside a FUSE callback).</summary>
public readonly record struct FuseCaller(uint Uid, uint Gid, int Pid)
{
    /// <summary>The caller of the current request, from fuse_get_context().</summary>
    public static unsafe FuseCaller Current
    {
        get
        {
            var ctx = LibFuse.fuse_get_context();
            return ctx == null ? default : new FuseCaller(ctx->Uid, ctx->Gid, ctx->Pid);
        }
    }
}
