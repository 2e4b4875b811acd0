using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse;

// Design notes:
// - One dedicated thread per mount runs fuse_new → fuse_mount → the multi-threaded loop → fuse_unmount →
//   fuse_destroy. Callbacks run on libfuse's worker threads (so the mount may be used from the same process).
// - Mounted completes from the init callback (the kernel's INIT reached us: the mount serves requests);
//   Completion completes when the loop has returned and everything is torn down.
// - Shutdown (Unmount(), the CancellationToken, or SIGINT/SIGTERM when HandleSignals): lazy unmount
//   (umount2(MNT_DETACH) as root, else fusermount3 -u -z). The mount leaves the namespace at once; files still
//   open (a running VM's disk) keep being served; when the last one closes the kernel ends the connection,
//   workers get ENODEV and the loop returns. fuse_exit is NOT called on this path: with the exit flag set the
//   loop stops at the next request and open files would get ENOTCONN (verified). fuse_exit is used only to
//   force (second signal, Dispose after 10 s, or a failed lazy unmount). `fusermount3 -u` ends the loop the same way.
//   With auto_unmount, fusermount3 stays as a watchdog and removes the mount if this process is killed.
//   macOS (macFUSE): no lazy unmount and no auto_unmount; Unmount runs umount(8), which fails while files are open.
// - fuse_exit is only ever called under _lock while the fuse handle is alive; the loop thread clears the handle
//   under the same lock before destroying it.
// - With auto_unmount, libfuse does not waitpid() the fusermount3 watchdog it forked, so each ended mount leaves
//   one zombie until the process exits (irrelevant for the daemon's single mount; visible in long test runs).
//   We do not reap it: waitpid(-1) would steal the exit status of children started through Process.
// - We never call fuse_set_signal_handlers: in a .NET process signals go through PosixSignalRegistration.

/// <summary>A FUSE mount of an <see cref="IFuseFileSystem"/> served by libfuse's multi-threaded loop.</summary>
public sealed unsafe class FuseMount : IDisposable
{
    private readonly IFuseFileSystem _fileSystem;
    private readonly IFuseLog _log;
    private readonly TaskCompletionSource _mounted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _lock = new();
    private nint _fuse;
    private bool _stopRequested;
    private int _signalCount;
    private Thread? _thread;
    private CancellationTokenRegistration _cancellation;

    /// <summary>Prepares a mount; nothing happens until <see cref="Start"/>.</summary>
    public FuseMount(FuseMountOptions options, IFuseFileSystem fileSystem, IFuseLog? log = null)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        _fileSystem = fileSystem ?? throw new ArgumentNullException(nameof(fileSystem));
        _log = log ?? FuseLog.Null;
        MountPoint = Path.GetFullPath(options.MountPoint);
    }

    /// <summary>The options this mount was made with.</summary>
    public FuseMountOptions Options { get; }

    /// <summary>The absolute mount point.</summary>
    public string MountPoint { get; }

    /// <summary>Completes when the mount is live (init received); faults if mounting failed.</summary>
    public Task Mounted => _mounted.Task;

    /// <summary>Completes with the loop's return code once unmounted and torn down; faults if mounting failed.</summary>
    public Task<int> Completion => _completion.Task;

    /// <summary>Mounts on a dedicated thread and returns at once; see <see cref="Mounted"/>.</summary>
    public void Start(CancellationToken cancellationToken = default)
    {
        FuseLibrary.ThrowIfUnavailable();
        if (Interlocked.CompareExchange(ref _thread, new Thread(Run) { IsBackground = true, Name = "fuse-loop " + MountPoint }, null) != null)
        {
            throw new InvalidOperationException("the mount was already started");
        }

        _cancellation = cancellationToken.Register(Unmount);
        _thread.Start();
    }

    /// <summary>
    /// Asks the mount to end: lazy unmount (the mount leaves the namespace at once; files still open keep being
    /// served and the loop ends when the last one is closed). With <paramref name="force"/>, or when the lazy
    /// unmount fails, also fuse_exit: the loop then ends at the next request and open files get ENOTCONN.
    /// Idempotent, callable from any thread.
    /// </summary>
    public void Unmount(bool force = false)
    {
        bool detach;
        lock (_lock)
        {
            detach = !_stopRequested && _fuse != 0;
            _stopRequested = true;
            if (_fuse != 0 && force)
            {
                LibFuse.fuse_exit(_fuse);
            }
        }

        if (detach && !DetachMount())
        {
            lock (_lock)
            {
                if (_fuse != 0)
                {
                    LibFuse.fuse_exit(_fuse);
                }
            }
        }
    }

    /// <summary>Asks the mount to end (lazy unmount); see <see cref="Unmount(bool)"/>.</summary>
    public void Unmount() => Unmount(force: false);

    /// <summary>Unmounts and waits (up to 10 s) for the loop to end.</summary>
    public void Dispose()
    {
        Unmount();
        if (_thread != null && !((IAsyncResult)_completion.Task).AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10)))
        {
            _log.Log(FuseLogLevel.Warning, $"{MountPoint}: the FUSE loop did not end within 10 s (files still open?): forcing it", null);
            Unmount(force: true);
        }

        _cancellation.Dispose();
    }

    private void Run()
    {
        var args = (FuseArgs*)NativeMemory.AllocZeroed((nuint)sizeof(FuseArgs));
        var session = new FuseSession(_fileSystem, _log, Options, _ => OnInitialized());
        var handle = GCHandle.Alloc(session);
        nint fuse = 0;
        var signals = new List<PosixSignalRegistration>();
        try
        {
            foreach (var arg in Options.BuildArguments())
            {
                var bytes = Encoding.UTF8.GetBytes(arg + "\0");
                fixed (byte* p = bytes)
                {
                    if (LibFuse.fuse_opt_add_arg(args, p) != 0)
                    {
                        throw new IOException($"fuse_opt_add_arg({arg}) failed");
                    }
                }
            }

            var ops = FuseCallbacks.Create();
            fuse = LibFuse.fuse_new(args, &ops, (nuint)sizeof(FuseOperations), GCHandle.ToIntPtr(handle));
            if (fuse == 0)
            {
                throw new IOException($"fuse_new failed for {MountPoint} (options: {string.Join(' ', Options.BuildArguments())}); libfuse printed the reason on stderr");
            }

            var mountPoint = Encoding.UTF8.GetBytes(MountPoint + "\0");
            int rc;
            fixed (byte* mp = mountPoint)
            {
                rc = LibFuse.fuse_mount(fuse, mp);
            }

            if (rc != 0)
            {
                throw new IOException($"mounting FUSE at {MountPoint} failed (fuse_mount returned {rc}); libfuse printed the reason on stderr");
            }

            bool stopEarly;
            lock (_lock)
            {
                _fuse = fuse;
                stopEarly = _stopRequested;
            }

            _log.Log(FuseLogLevel.Debug, $"{MountPoint}: mounted (libfuse {FuseLibrary.PackageVersion}), starting the loop", null);
            if (stopEarly && !DetachMount())
            {
                LibFuse.fuse_exit(fuse);
            }

            if (Options.HandleSignals)
            {
                foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
                {
                    signals.Add(PosixSignalRegistration.Create(signal, ctx =>
                    {
                        ctx.Cancel = true;
                        bool again = Volatile.Read(ref _signalCount) > 0;
                        Interlocked.Increment(ref _signalCount);
                        _log.Log(FuseLogLevel.Information, again
                            ? $"{MountPoint}: {ctx.Signal} received again, ending now (open files get ENOTCONN)"
                            : $"{MountPoint}: {ctx.Signal} received, unmounting (open files are served until closed; signal again to force)", null);
                        Unmount(force: again);
                    }));
                }
            }

            int loop = EndOfConnectionIsClean(RunLoop(fuse));
            lock (_lock)
            {
                _fuse = 0;
            }

            LibFuse.fuse_unmount(fuse);
            LibFuse.fuse_destroy(fuse);
            fuse = 0;
            _log.Log(FuseLogLevel.Information, $"{MountPoint}: unmounted (loop returned {loop})", null);
            _mounted.TrySetException(new IOException($"the FUSE loop for {MountPoint} ended before the kernel initialized the mount (loop returned {loop})"));
            _completion.TrySetResult(loop);
        }
        catch (Exception e)
        {
            _log.Log(FuseLogLevel.Error, e.Message, e);
            _mounted.TrySetException(e);
            _completion.TrySetException(e);
        }
        finally
        {
            foreach (var s in signals)
            {
                s.Dispose();
            }

            if (fuse != 0)
            {
                lock (_lock)
                {
                    _fuse = 0;
                }

                LibFuse.fuse_destroy(fuse);
            }

            LibFuse.fuse_opt_free_args(args);
            NativeMemory.Free(args);
            handle.Free();
        }
    }

    private int RunLoop(nint fuse)
    {
        if (LibFuse.fuse_version() >= 312)
        {
            nint config = LibFuse.fuse_loop_cfg_create();
            try
            {
                LibFuse.fuse_loop_cfg_set_clone_fd(config, 0);
                LibFuse.fuse_loop_cfg_set_max_threads(config, (uint)Math.Max(2, Options.MaxThreads));
                return LibFuse.fuse_loop_mt_312(fuse, config);
            }
            finally
            {
                LibFuse.fuse_loop_cfg_destroy(config);
            }
        }

        return LibFuse.fuse_loop_mt_31(fuse, 0);
    }

    /// <summary>
    /// The loop's return code, with the kernel's ECONNABORTED counted as the clean end it is. When the last file of a
    /// detached mount closes, the kernel aborts the connection; a worker that takes a request off the queue in the
    /// middle of that abort reads ECONNABORTED instead of ENODEV, and libfuse (3.14 and later) returns it as an error.
    /// </summary>
    private int EndOfConnectionIsClean(int loop)
    {
        if (loop == -Errno.ECONNABORTED && OperatingSystem.IsLinux())
        {
            _log.Log(FuseLogLevel.Information, $"{MountPoint}: the kernel aborted the connection while a worker read it (ECONNABORTED): the mount has ended", null);
            return 0;
        }

        return loop;
    }

    private void OnInitialized()
    {
        _log.Log(FuseLogLevel.Information, $"{MountPoint}: mounted", null);
        _mounted.TrySetResult();
    }

    private static bool RunUnmountTool(string tool, string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(tool, arguments)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        });
        if (process == null || !process.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            process?.Kill();
            return false;
        }

        return process.ExitCode == 0;
    }

    /// <summary>Lazy unmount: the mount disappears from the namespace now; open files keep being served. False on failure.</summary>
    private bool DetachMount()
    {
        try
        {
            if (BackupFuse.Core.Native.NativeAbi.Current is { IsMacOS: true })
            {
                return RunUnmountTool("/sbin/umount", [MountPoint]); // macOS has no lazy unmount; open files keep the mount busy
            }

            if (LibC.geteuid() == 0)
            {
                var path = Encoding.UTF8.GetBytes(MountPoint + "\0");
                fixed (byte* p = path)
                {
                    if (LibC.umount2(p, LibC.MNT_DETACH) == 0)
                    {
                        return true;
                    }
                }

                var e = ErrnoException.FromLastError("umount2", MountPoint);
                _log.Log(FuseLogLevel.Warning, $"{MountPoint}: lazy unmount failed: {e.Message}", null);
                return false;
            }

            return RunUnmountTool("fusermount3", ["-u", "-q", "-z", MountPoint]);
        }
        catch (Exception e)
        {
            _log.Log(FuseLogLevel.Warning, $"{MountPoint}: lazy unmount failed: {e.Message}", e);
            return false;
        }
    }
}
