using BackupFuse.Core.Native;

namespace BackupFuse.Fuse.Interop;

// Design notes:
// - The platform side of the callbacks (see FuseCallbacks' notes): the ABI chosen once, and open/create/opendir
//   called with fi->flags in canonical numbers. On linux-x64 the flags are the identity and nothing is rewritten.

/// <summary>The callbacks' translation between the native ABI and the file system's canonical forms.</summary>
internal static unsafe partial class FuseCallbacks
{
    private static readonly NativeAbi Native = NativeAbi.Current ?? NativeAbi.LinuxX64;

    /// <summary>Calls <paramref name="open"/> with fi->flags in canonical numbers, restoring the native word afterwards.</summary>
    private static void WithCanonicalFlags(FuseFileInfo* fi, FuseSession s, FusePath path, uint mode, delegate*<IFuseFileSystem, FusePath, uint, ref FuseFileInfo, void> open)
    {
        if (Native.OpenFlags.IsIdentity)
        {
            open(s.FileSystem, path, mode, ref *fi);
            return;
        }

        int native = fi->Flags;
        fi->Flags = Native.OpenFlags.ToCanonical(native);
        try
        {
            open(s.FileSystem, path, mode, ref *fi);
        }
        finally
        {
            fi->Flags = native;
        }
    }

    private static void CallOpen(IFuseFileSystem fs, FusePath path, uint mode, ref FuseFileInfo fi) => fs.Open(path, ref fi);

    private static void CallCreate(IFuseFileSystem fs, FusePath path, uint mode, ref FuseFileInfo fi) => fs.Create(path, mode, ref fi);

    private static void CallOpenDirectory(IFuseFileSystem fs, FusePath path, uint mode, ref FuseFileInfo fi) => fs.OpenDirectory(path, ref fi);
}
