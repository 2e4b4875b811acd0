using System.Runtime.InteropServices;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - libfuse's high-level API mallocs a buffer of the request's size (up to 1 MiB) for every read, on whichever of
//   its worker threads serves it. glibc gives each thread that contends its own arena (up to 8 per core) and every
//   arena keeps freed memory for reuse: measured with scripts/memory-check.sh, about 40 MiB of the daemon's resident
//   set under 4 readers and 2 writers. One arena (the main heap) keeps that near the requests in flight; its lock is
//   taken once per request. Measured on 2 cores, 3 interleaved runs each, one arena against two: 4 KiB random reads
//   (4 jobs) of an uncompressed backup 91-100k against 74-99k IOPS, of a zstd one 37-46k against 36-41k, sequential
//   2.4-3.2 against 2.6-3.2 GB/s (no difference this host can resolve); the 1 TiB mount's peak RSS after
//   `qemu-img info` and a 64 MiB read 27.0-28.2 against 28.2-29.4 MiB (5 runs each).
// - Deliberately not done: lowering the mmap threshold (each 1 MiB buffer would be mapped and faulted in again for
//   every request, a third of the sequential read speed).
// - Called by the daemon's mount command before the FUSE worker threads start (not inside the binding: the FUSE
//   tests' process runs without it). By then the runtime's own threads may have made arenas of their own, so the
//   daemon child of `backupfuse mount` also gets MALLOC_ARENA_MAX in its environment (DaemonSession), which glibc
//   reads before any thread exists; this call covers --foreground runs started some other way. glibc only: elsewhere (musl, macOS) the call is missing or means something else, and nothing happens.

/// <summary>Keeps the C heap (libfuse's request buffers) from growing an arena per worker thread.</summary>
public static partial class NativeHeap
{
    /// <summary>The daemon's glibc malloc arenas: one, the main heap, shared by every worker thread.</summary>
    public const int DaemonArenas = 1;

    private const int MArenaMax = -8;

    /// <summary>Limits glibc to <paramref name="arenas"/> malloc arenas; call before the FUSE worker threads start.</summary>
    public static void LimitArenas(int arenas)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = Mallopt(MArenaMax, arenas);
        }
        catch (EntryPointNotFoundException)
        {
            // Not glibc: nothing to tune.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);
}
