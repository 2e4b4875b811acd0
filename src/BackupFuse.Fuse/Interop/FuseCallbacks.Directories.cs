using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BackupFuse.Fuse.Interop;

/// <summary>The directory callbacks: opendir, readdir (entries through <see cref="DirectoryFiller"/>), releasedir.</summary>
internal static unsafe partial class FuseCallbacks
{
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OpenDirectory(byte* path, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            WithCanonicalFlags(fi, s, new FusePath(path), 0, &CallOpenDirectory);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "opendir", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReadDirectory(byte* path, void* buf, delegate* unmanaged[Cdecl]<void*, byte*, Stat*, long, int, int> filler, long offset, FuseFileInfo* fi, int flags)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.ReadDirectory(fi->Fh, new DirectoryFiller(buf, filler, Native.Stat));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "readdir", path);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int ReleaseDirectory(byte* path, FuseFileInfo* fi)
    {
        FuseSession? s = null;
        try
        {
            s = FuseSession.Current;
            s.FileSystem.ReleaseDirectory(fi->Fh);
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, s, "releasedir", path);
        }
    }
}
