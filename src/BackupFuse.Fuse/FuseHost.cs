namespace BackupFuse.Fuse;

/// <summary>Runs a mount to its end: the daemon's "mount" command in one call.</summary>
public static class FuseHost
{
    /// <summary>
    /// Mounts <paramref name="fileSystem"/>, calls <paramref name="mounted"/> once the mount is live, and returns the
    /// loop's return code when it is unmounted (cancellation, SIGINT/SIGTERM with HandleSignals, or fusermount3 -u).
    /// Throws when mounting fails.
    /// </summary>
    public static int Run(FuseMountOptions options, IFuseFileSystem fileSystem, IFuseLog log, CancellationToken cancellationToken, Action? mounted = null)
    {
        using var mount = new FuseMount(options, fileSystem, log);
        mount.Start(cancellationToken);
        if (mounted != null)
        {
            mount.Mounted.ContinueWith(t => { if (t.IsCompletedSuccessfully) { mounted(); } }, TaskScheduler.Default);
        }

        return mount.Completion.GetAwaiter().GetResult();
    }
}
