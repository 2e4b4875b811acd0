using System.Runtime.InteropServices;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - libfuse's high-level API mallocs a buffer of the request's size (up to 1 MiB) for every read, on whichever of
//   its worker threads serves it, and frees it after the reply. Left to glibc's defaults this costs twice:
//   - each thread that contends gets an arena of its own (up to 8 per core), and every arena keeps freed memory for
//     reuse: measured with scripts/memory-check.sh, about 40 MiB of the daemon's resident set under 4 readers and
//     2 writers;
//   - with fewer arenas, the 1 MiB buffers that reach the top of the heap are trimmed back to the system and faulted
//     in again by the next request (glibc's dynamic thresholds: a trim above twice the mmap threshold).
// - So the daemon runs with one arena (the main heap; its lock is taken once per request), 1 MiB buffers are never
//   mapped on their own (mmap threshold 4 MiB), and up to 16 MiB of free heap top is kept rather than trimmed.
//   Measured on 2 cores, 6 interleaved runs each, against the earlier two arenas with glibc's dynamic thresholds:
//   a sequential uncompressed read (fio 1 MiB, 2 GiB) took 1.9-2.7k page faults against 4.8-12.9k, its throughput
//   within this host's noise (3101-4248 against 3055-3800 MiB/s); the 1 TiB mount's peak RSS after `qemu-img info`
//   and a 64 MiB read 26.9-28.1 against 27.0-29.1 MiB. One arena with the dynamic thresholds was worse than either:
//   14-34k faults, 2695-3253 MiB/s.
// - Deliberately not done: a low mmap threshold (each 1 MiB buffer would be mapped and faulted in again for every
//   request, a third of the sequential read speed).
// - Called by the daemon's mount command before the FUSE worker threads start (not inside the binding: the FUSE
//   tests' process runs without it). By then the runtime's own threads may have made arenas of their own, so the
//   daemon child of `backupfuse mount` also gets MALLOC_ARENA_MAX in its environment (DaemonSession), which glibc
//   reads before any thread exists (the systemd unit and the Docker image set it too); the thresholds hold for every
//   later allocation, so mallopt here is enough for them. glibc only: elsewhere (musl, macOS) the call is missing or
//   means something else, and nothing happens.

/// <summary>Keeps the C heap (libfuse's request buffers) small and its pages in place.</summary>
public static partial class NativeHeap
{
    /// <summary>The daemon's glibc malloc arenas: one, the main heap, shared by every worker thread.</summary>
    public const int DaemonArenas = 1;

    /// <summary>Allocations from this size up get a mapping of their own; libfuse's read buffers (1 MiB) stay below it.</summary>
    public const int MmapThresholdBytes = 4 << 20;

    /// <summary>Free memory at the top of the heap kept for the next requests instead of being returned to the system.</summary>
    public const int TrimThresholdBytes = 16 << 20;

    private const int MTrimThreshold = -1;
    private const int MMmapThreshold = -3;
    private const int MArenaMax = -8;

    /// <summary>Sets the daemon's malloc arenas and thresholds; call before the FUSE worker threads start.</summary>
    public static void ConfigureForDaemon()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = Mallopt(MArenaMax, DaemonArenas);
            _ = Mallopt(MMmapThreshold, MmapThresholdBytes);
            _ = Mallopt(MTrimThreshold, TrimThresholdBytes);
        }
        catch (EntryPointNotFoundException)
        {
            // Not glibc: nothing to tune.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);
}
