using Xunit;

namespace BackupFuse.Testing;

// Design notes:
// - A test whose prerequisite (FUSE, an oracle tool, a compiler) is missing must not show green: it reports
//   Skipped with the reason. xunit 2 has no built-in dynamic skip, so this throws Xunit.SkipException
//   (package Xunit.SkippableFact); only a test marked [SkippableFact] or [SkippableTheory] turns that into a
//   Skipped result. Under a plain [Fact] the same exception fails the test, which is still not a false pass.
// - With BACKUPFUSE_REQUIRE_FUSE=1 (scripts/test.sh sets it) a missing prerequisite fails the test instead:
//   that run must exercise everything. scripts/test.sh also fails when the closing counts show any skip.
// - Nothing here installs anything: scripts/install-deps.sh --test does.

/// <summary>Skips (or, when required, fails) the running test when something it needs is missing.</summary>
public static class Prerequisite
{
    /// <summary>The variable that turns every skip into a failure; scripts/test.sh sets it to 1.</summary>
    public const string RequireVariable = "BACKUPFUSE_REQUIRE_FUSE";

    /// <summary>True when <see cref="RequireVariable"/> is 1: missing prerequisites fail instead of skipping.</summary>
    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    /// <summary>
    /// Returns when <paramref name="missingReason"/> is null. Otherwise throws <see cref="SkipException"/> with
    /// the reason (the test must be [SkippableFact] or [SkippableTheory]), or fails it under
    /// <see cref="RequireVariable"/>=1.
    /// </summary>
    public static void SkipIf(string? missingReason)
    {
        if (missingReason == null)
        {
            return;
        }

        if (Required)
        {
            Assert.Fail($"required but unavailable ({RequireVariable}=1): {missingReason}");
        }

        throw new SkipException(missingReason);
    }

    /// <summary>Skips (or fails, see <see cref="SkipIf"/>) unless <paramref name="program"/> is on PATH.</summary>
    public static void Tool(string program, string package) =>
        SkipIf(ExternalTool.Exists(program) ? null : $"{program} is missing (package {package}; scripts/install-deps.sh --test installs it)");
}
