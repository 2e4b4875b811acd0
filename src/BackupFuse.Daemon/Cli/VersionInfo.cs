using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;
using System.Runtime.InteropServices;
using BackupFuse.Fuse;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - `backupfuse --version` is the first thing people run after installing (and the first thing a bug report
//   should include), so it reports what a mount needs: the program version and commit, the libfuse3 that
//   loads (version and file), fusermount3 (auto_unmount always uses it, even as root) and /dev/fuse (present
//   AND openable: a container without --device, or a systemd unit without DeviceAllow, fails the open).
// - Every missing piece is one line that says what to install or pass. The probe never throws and always
//   exits 0: it describes the host, it does not judge it. `mount` uses MountProblem() to refuse early with the
//   same wording (Program.cs), before any image is opened.
// - The probe loads libfuse3 itself (dlopen + fuse_pkgversion) instead of going through FuseLibrary, because
//   FuseLibrary refuses to report a version while /dev/fuse is missing and we want both facts separately.
//   FuseLibrary.UnavailableReason stays the last word for what it alone checks (platform, minimum version).
// - macOS: libfuse is macFUSE's libfuse3 (FuseLibrary finds it); fusermount3 and /dev/fuse do not exist there.

/// <summary>The text of <c>backupfuse --version</c> and the FUSE preflight check of <c>mount</c>.</summary>
public static unsafe class VersionInfo
{
    private const string InstallFuse3 = "install package fuse3 (Debian/Ubuntu: apt-get install fuse3)";
    private static readonly string[] FuseLibraryNames = ["libfuse3.so.3", "libfuse3.so"];
    private static readonly string[] FusermountDirectories = ["/usr/bin", "/bin", "/usr/local/bin"];

    /// <summary>Replaces System.CommandLine's default <c>--version</c> output (the bare assembly version) with <see cref="Describe"/>.</summary>
    public static void InstallOn(RootCommand root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var option = root.Options.OfType<VersionOption>().Single();
        option.Action = new PrintAction();
    }

    /// <summary>"backupfuse 0.1.0 (commit abcdef0)" from the assembly's informational version.</summary>
    public static string ProgramLine()
    {
        string informational = typeof(VersionInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        int plus = informational.IndexOf('+', StringComparison.Ordinal);
        string version = plus < 0 ? informational : informational[..plus];
        string commit = plus < 0 ? "unknown" : informational[(plus + 1)..];
        if (commit.Length > 7)
        {
            commit = commit[..7];
        }

        return $"backupfuse {version} (commit {commit})";
    }

    /// <summary>The full multi-line report: program, runtime, libfuse, fusermount3, /dev/fuse.</summary>
    public static string Describe()
    {
        var probe = Probe();
        var lines = new List<string>
        {
            ProgramLine(),
            $".NET {Environment.Version}, {RuntimeInformation.RuntimeIdentifier}, {(System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "NativeAOT")}",
            probe.LibFuseLine,
            probe.FusermountLine,
            probe.DeviceLine,
            $"deflate: {BackupFuse.BackupImage.Format.ChunkCompressor.Implementation}",
        };
        if (BackupFuse.Core.Native.NativeAbi.Current == null)
        {
            lines.Add($"platform: {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture} is not supported for mounting (linux-x64, linux-arm64, macOS); backup, info, verify and export work");
        }
        else if (BackupFuse.Fuse.Overlay.UnderlyingDirectory.UnsupportedReason is { } overlay)
        {
            lines.Add($"platform: {RuntimeInformation.OSDescription}: {overlay}; not yet tested on a Mac");
        }

        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>Why <c>mount</c> cannot work on this host (what to install or pass), or null when it can.</summary>
    public static string? MountProblem()
    {
        var probe = Probe();
        return probe.LibFuseProblem ?? probe.DeviceProblem ?? probe.FusermountProblem ?? FuseLibrary.UnavailableReason ?? BackupFuse.Fuse.Overlay.UnderlyingDirectory.UnsupportedReason;
    }

    private static HostProbe Probe()
    {
        if (OperatingSystem.IsMacOS())
        {
            // macFUSE mounts through its own helper; there is no fusermount3 and no /dev/fuse to check.
            string? problem = FuseLibrary.UnavailableReason;
            string line = problem ?? $"libfuse {FuseLibrary.PackageVersion} (macFUSE)";
            return new HostProbe(problem == null ? line : $"libfuse: {problem}", problem, "fusermount3: not used on macOS", null, "/dev/fuse: not used on macOS", null);
        }

        if (!OperatingSystem.IsLinux())
        {
            const string notLinux = "FUSE mounting is implemented for Linux and macOS only";
            return new HostProbe($"libfuse: {notLinux}", notLinux, "fusermount3: not applicable", null, "/dev/fuse: not applicable", null);
        }

        var (libFuseLine, libFuseProblem) = ProbeLibFuse();
        var (fusermountLine, fusermountProblem) = ProbeFusermount();
        var (deviceLine, deviceProblem) = ProbeDevice();
        return new HostProbe(libFuseLine, libFuseProblem, fusermountLine, fusermountProblem, deviceLine, deviceProblem);
    }

    private static (string Line, string? Problem) ProbeLibFuse()
    {
        foreach (var name in FuseLibraryNames)
        {
            if (!NativeLibrary.TryLoad(name, out var handle))
            {
                continue;
            }

            string version = "version unknown";
            if (NativeLibrary.TryGetExport(handle, "fuse_pkgversion", out var export))
            {
                var pkgVersion = (delegate* unmanaged<byte*>)export;
                version = Marshal.PtrToStringUTF8((nint)pkgVersion()) ?? version;
            }

            return ($"libfuse {version} ({LoadedPath("libfuse3.so") ?? name})", null);
        }

        string problem = $"libfuse3 not found: {InstallFuse3}";
        return (problem, problem);
    }

    private static (string Line, string? Problem) ProbeFusermount()
    {
        var directories = FusermountDirectories.Concat((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries));
        foreach (var directory in directories)
        {
            string candidate = Path.Combine(directory, "fusermount3");
            if (File.Exists(candidate))
            {
                return ($"fusermount3: {candidate}", null);
            }
        }

        string problem = $"fusermount3 not found (needed to unmount automatically): {InstallFuse3}";
        return (problem, problem);
    }

    private static (string Line, string? Problem) ProbeDevice()
    {
        const string device = "/dev/fuse";
        if (!File.Exists(device))
        {
            string missing = $"{device}: missing: load the kernel module (modprobe fuse); in a container run with --device /dev/fuse --cap-add SYS_ADMIN";
            return (missing, missing);
        }

        try
        {
            using var handle = File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            return ($"{device}: present", null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string refused = $"{device}: present but cannot be opened ({e.Message}); in a container pass --device /dev/fuse, in a systemd unit DeviceAllow=/dev/fuse rw";
            return (refused, refused);
        }
    }

    /// <summary>The file a loaded library was mapped from (/proc/self/maps), or null.</summary>
    private static string? LoadedPath(string fileNamePrefix)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash >= 0 && Path.GetFileName(line.AsSpan(slash)).StartsWith(fileNamePrefix, StringComparison.Ordinal))
                {
                    return line[slash..];
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private sealed record HostProbe(string LibFuseLine, string? LibFuseProblem, string FusermountLine, string? FusermountProblem, string DeviceLine, string? DeviceProblem);

    private sealed class PrintAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            Console.Out.WriteLine(Describe());
            return ExitCodes.Ok;
        }
    }
}
