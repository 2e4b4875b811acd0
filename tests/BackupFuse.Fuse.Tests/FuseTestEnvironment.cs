using BackupFuse.Fuse;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// Decides whether real-mount tests can run. A test that cannot run reports Skipped with the reason (it must be
/// [SkippableFact]: <see cref="Prerequisite.SkipIf"/> throws Xunit.SkipException); with
/// BACKUPFUSE_REQUIRE_FUSE=1 it fails instead.
/// </summary>
internal static class FuseTestEnvironment
{
    public static string? MountSkipReason
    {
        get
        {
            if (FuseLibrary.UnavailableReason is { } reason)
            {
                return reason;
            }

            if (!ExternalTool.Exists("fusermount3"))
            {
                return "fusermount3 is missing (package fuse3); auto_unmount needs it";
            }

            return null;
        }
    }

    /// <summary>
    /// Returns false when <paramref name="reason"/> is null; otherwise skips the test (throws Xunit.SkipException)
    /// or fails it under BACKUPFUSE_REQUIRE_FUSE=1. It never returns true: the bool only keeps
    /// <c>if (Skip(...)) return;</c> callers compiling.
    /// </summary>
    public static bool Skip(ITestOutputHelper output, string? reason)
    {
        if (reason != null)
        {
            output.WriteLine("skipped: " + reason);
        }

        Prerequisite.SkipIf(reason);
        return false;
    }

    /// <summary>Skips (see <see cref="Skip"/>) unless libfuse3, /dev/fuse and fusermount3 are all there.</summary>
    public static bool SkipUnlessMountable(ITestOutputHelper output) => Skip(output, MountSkipReason);
}
