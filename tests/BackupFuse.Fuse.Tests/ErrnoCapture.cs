using BackupFuse.Fuse;

namespace BackupFuse.Fuse.Tests;

/// <summary>What a direct call into the file system answered: 0, or the errno of its ErrnoException.</summary>
internal static class ErrnoCapture
{
    /// <summary>Runs <paramref name="action"/>: 0 when it returned, the errno when it threw an ErrnoException.</summary>
    public static int Of(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (ErrnoException e)
        {
            return e.Errno;
        }
    }
}
