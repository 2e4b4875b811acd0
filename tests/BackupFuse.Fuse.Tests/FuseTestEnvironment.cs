using BackupFuse.Fuse;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// Decides whether real-mount tests can run. xunit 2 has no dynamic skip: a test that cannot run prints
/// "SKIPPED: reason" (test output and stderr) and returns; with BACKUPFUSE_REQUIRE_FUSE=1 it fails instead.
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

            if (!Testing.ExternalTool.Exists("fusermount3"))
            {
                return "fusermount3 is missing (package fuse3); auto_unmount needs it";
            }

            return null;
        }
    }

    /// <summary>True when the test must stop here (reason printed).</summary>
    public static bool Skip(ITestOutputHelper output, string? reason)
    {
        if (reason == null)
        {
            return false;
        }

        if (Environment.GetEnvironmentVariable("BACKUPFUSE_REQUIRE_FUSE") == "1")
        {
            Assert.Fail("required but unavailable: " + reason);
        }

        output.WriteLine("SKIPPED: " + reason);
        Console.Error.WriteLine("SKIPPED: " + reason);
        return true;
    }

    public static bool SkipUnlessMountable(ITestOutputHelper output) => Skip(output, MountSkipReason);
}
