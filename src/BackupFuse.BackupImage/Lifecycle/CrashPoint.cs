using System.Globalization;
using System.Runtime.InteropServices;

namespace BackupFuse.BackupImage.Lifecycle;

// Design notes:
// - Crash injection for tests of merge, prune and commit: with BACKUPFUSE_CRASH_AT=K in the environment, the K-th
//   write phase reached (counting from 1 over the whole process) kills the process with SIGKILL, which no handler
//   sees, exactly as a power cut would look to the files (apart from the page cache, which fsync covers). A test runs a
//   command with K = 1, 2, ... until it completes, so every phase is interrupted once.
// - Without the variable Hit costs one static read. The variable is test-only and documented as such.

/// <summary>Named points between the write phases of lifecycle operations, where a test may kill the process.</summary>
public static partial class CrashPoint
{
    /// <summary>The environment variable naming the phase (1-based) at which to die.</summary>
    public const string Variable = "BACKUPFUSE_CRASH_AT";

    private static readonly int Target = int.TryParse(Environment.GetEnvironmentVariable(Variable), NumberStyles.None, CultureInfo.InvariantCulture, out int k) ? k : 0;
    private static int _reached;

    /// <summary>A write phase of <paramref name="name"/> is done; dies here when the environment asks for this one.</summary>
    public static void Hit(string name)
    {
        if (Target <= 0)
        {
            return;
        }

        if (Interlocked.Increment(ref _reached) == Target)
        {
            Console.Error.WriteLine($"crash point {Target}: {name}");
            Console.Error.Flush();
            _ = kill(Environment.ProcessId, 9);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
