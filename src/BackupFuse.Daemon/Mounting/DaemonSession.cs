using System.Runtime.InteropServices;
using BackupFuse.Core.Native;

namespace BackupFuse.Daemon.Mounting;

// Design notes:
// - How `backupfuse mount` (without --foreground) starts its daemon: the same program again with --foreground, in a
//   session of its own so that the terminal's Ctrl-C and hang-up never reach it. The child makes that session itself
//   (setsid(2) first thing in the mount command) instead of being started through /usr/bin/setsid: one exec fewer on
//   the path from `mount` to a live mount, which a hypervisor hook waits for (the 1 TiB mount-to-stat target is 50 ms).
// - The parent marks the child with NewSessionVariable; the child removes the mark from its environment, so programs
//   it starts through .NET do not inherit it (the C environment keeps it; fusermount3 ignores it).
// - The parent also sets MALLOC_ARENA_MAX (unless the user did): glibc reads it when the child's C heap starts, before
//   any thread exists. NativeHeap's mallopt comes later, when the runtime's threads may already have made arenas: in
//   /proc/PID/smaps during a 64 MiB read, three arenas besides the main heap grew by a 1 MiB libfuse read buffer each,
//   where the limit allowed one. With the variable the limit holds from the start (NativeHeap.DaemonArenas: one
//   arena, the main heap, so libfuse's buffers add no arena of their own).
// - A failed setsid (already a session leader: started some other way) changes nothing and is not an error.
// - Standard streams: unless it logs to the journal, the child's standard output and error are pipes to the parent,
//   which reports them if the child fails before the mount is live and exits once it is. From then on a write to
//   them fails with EPIPE (the log file still gets every line, but each console line cost a failed write), so the
//   child points them at /dev/null when its mount is live (ReleaseParentPipes). The mark says whether they are pipes.

/// <summary>Puts the daemon child of `backupfuse mount` in a session of its own.</summary>
public static partial class DaemonSession
{
    /// <summary>Set by the parent in the child's environment: make a new session.</summary>
    public const string NewSessionVariable = "BACKUPFUSE_NEW_SESSION";

    private const string MarkWithPipes = "pipes";

    private static bool s_pipesToParent;

    /// <summary>
    /// Marks a child's environment for <see cref="EnterIfMarked"/> and limits its malloc arenas from the start;
    /// <paramref name="standardStreamsArePipes"/> when the parent reads the child's standard output and error.
    /// </summary>
    public static void Mark(IDictionary<string, string?> environment, bool standardStreamsArePipes)
    {
        environment[NewSessionVariable] = standardStreamsArePipes ? MarkWithPipes : "1";
        if (!environment.ContainsKey("MALLOC_ARENA_MAX"))
        {
            environment["MALLOC_ARENA_MAX"] = NativeHeap.DaemonArenas.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>In a child started by <see cref="Mark"/>: removes the mark and starts a new session; true if it did.</summary>
    public static bool EnterIfMarked()
    {
        string? mark = Environment.GetEnvironmentVariable(NewSessionVariable);
        if (mark is not ("1" or MarkWithPipes))
        {
            return false;
        }

        s_pipesToParent = mark == MarkWithPipes;
        Environment.SetEnvironmentVariable(NewSessionVariable, null);
        return OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() ? SetSid() >= 0 : false;
    }

    /// <summary>
    /// In a child whose standard streams are pipes to its parent (see <see cref="Mark"/>), once the parent no longer
    /// reads them: points standard input, output and error at /dev/null. Does nothing in any other process.
    /// </summary>
    public static void ReleaseParentPipes()
    {
        if (!s_pipesToParent || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()))
        {
            return;
        }

        s_pipesToParent = false;
        int devNull = PosixCalls.Open("/dev/null", PosixCalls.ORdWr);
        if (devNull < 0)
        {
            return; // keep the pipes: a failed write costs a little, nothing is lost (the log file has every line)
        }

        for (int fd = 0; fd <= 2; fd++)
        {
            _ = PosixCalls.DuplicateOnto(devNull, fd);
        }

        if (devNull > 2)
        {
            _ = PosixCalls.Close(devNull);
        }
    }

    [LibraryImport("libc", EntryPoint = "setsid")]
    private static partial int SetSid();
}
