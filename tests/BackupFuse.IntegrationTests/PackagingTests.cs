using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - The SDK and runtime-deps images cannot be pulled here (DockerTests builds the image on a local Debian base with
//   a prebuilt binary), so the SDK path is checked without an engine: the Dockerfile is parsed (global ARG
//   defaults, stages, COPY sources, ENTRYPOINT, STOPSIGNAL, CMD, the SDK tag against global.json), and its build stage is
//   replayed: the COPY sources (minus what .dockerignore drops) go into an empty directory and the stage's own
//   `dotnet publish` line runs there. That proves the COPY list is complete and the binary the runtime stage
//   copies is produced where it looks for it.
// - That one publish (the fixture, built on first use) is also what scripts/package.sh --binary packages, so
//   the .deb is checked with the same binary: dpkg-deb --info/--contents, then the extracted program runs.
//   Installing it into a fresh Debian 12 root (debootstrap, ~2 minutes, network) is scripts/package-check.sh.
// - Missing libfuse3 and /dev/fuse are simulated in a private mount namespace (unshare -m): /dev/null bound
//   over the library file, an empty tmpfs over /dev. The tests run as root (CI and scripts/test.sh do).
// - Tools that a Debian 12 CI machine may lack (systemd-analyze) come from scripts/install-deps.sh --test; a test
//   never installs anything. Without the tool the test reports Skipped (failed under BACKUPFUSE_REQUIRE_FUSE=1).

/// <summary>Dockerfile, .deb, systemd unit, <c>--version</c> and the FUSE preflight of <c>mount</c>.</summary>
public sealed class PackagingTests : IClassFixture<PackagingTests.Artifacts>
{
    private readonly Artifacts _artifacts;

    public PackagingTests(Artifacts artifacts)
    {
        _artifacts = artifacts;
    }

    private static string RepoRoot => Artifacts.RepoRoot;

    [Fact]
    public void DockerfileCopiesOnlyExistingPathsAndRunsThePublishedBinaryAsPid1()
    {
        var docker = Dockerfile.Load(Path.Combine(RepoRoot, "Dockerfile"));
        var (build, runtime) = (docker.Stages[0], docker.Stages[^1]);
        Assert.Equal("build", build.Alias);

        // The runtime stage copies the binary from the stage BINARY_FROM names: by default the SDK build stage
        // (BINARY_FROM=prebuilt takes a published binary from the context instead; DockerTests builds that way).
        var binary = Assert.Single(docker.Stages, s => s.Alias == "binary");
        Assert.Equal("build", binary.Image);
        Assert.Contains(docker.Stages, s => s.Alias == "prebuilt");

        var contextCopies = docker.Stages.SelectMany(s => s.Instructions).Where(i => i.Keyword == "COPY" && !i.Arguments.StartsWith("--from", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(contextCopies);
        foreach (var source in contextCopies.SelectMany(c => Dockerfile.CopySources(c.Arguments)))
        {
            string path = Path.Combine(RepoRoot, source);
            Assert.True(File.Exists(path) || Directory.Exists(path), $"Dockerfile COPY source {source} does not exist in the repository");
        }

        // The runtime stage copies the build stage's binary to one path, and the ENTRYPOINT (exec form: the daemon
        // is PID 1 and receives docker stop's SIGTERM itself) is exactly that path.
        var fromBuild = Assert.Single(runtime.Instructions, i => i.Keyword == "COPY" && i.Arguments.StartsWith("--from=binary", StringComparison.Ordinal));
        string[] copyWords = fromBuild.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string copiedFrom = copyWords[1];
        string installedAt = copyWords[2];
        var entrypoint = Dockerfile.ExecForm(runtime.Last("ENTRYPOINT"));
        Assert.Equal([installedAt], entrypoint);
        Assert.Equal("backupfuse", Path.GetFileName(copiedFrom));
        string publish = Assert.Single(build.Instructions, i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish", StringComparison.Ordinal)).Arguments;
        Assert.Equal(Path.GetDirectoryName(copiedFrom), Dockerfile.OutputDirectory(publish));

        Assert.Contains(runtime.Instructions, i => i.Keyword == "RUN" && Regex.IsMatch(i.Arguments, @"apt-get install .*\bfuse3\b"));
        Assert.Equal("SIGTERM", runtime.Last("STOPSIGNAL").Arguments);
        var cmd = Dockerfile.ExecForm(runtime.Last("CMD"));
        Assert.Equal("mount", cmd[0]);
        Assert.Contains("--foreground", cmd);
        Assert.Contains("--images", cmd);

        // global.json's latestPatch only accepts its own feature band: the pinned SDK image must be in it.
        var sdk = Regex.Match(build.Image, @"^mcr\.microsoft\.com/dotnet/sdk:(\d+)\.(\d+)\.(\d)(\d\d)\b");
        Assert.True(sdk.Success, $"the build stage should pin an SDK version (sdk:10.0.4xx), not {build.Image}");
        var pinned = Regex.Match(File.ReadAllText(Path.Combine(RepoRoot, "global.json")), "\"version\"\\s*:\\s*\"(\\d+)\\.(\\d+)\\.(\\d)(\\d\\d)\"");
        Assert.True(pinned.Success);
        for (int g = 1; g <= 3; g++)
        {
            Assert.Equal(pinned.Groups[g].Value, sdk.Groups[g].Value);
        }

        Assert.True(int.Parse(sdk.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture) >= int.Parse(pinned.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture), $"{build.Image} is older than global.json's SDK");
        Assert.Equal(Dockerfile.PublishArguments(publish), Dockerfile.PublishArguments(File.ReadAllText(Path.Combine(RepoRoot, "scripts/publish.sh"))));
    }

    [Fact]
    public void DockerBuildStagePublishesTheBinaryFromItsCopiedContextAlone()
    {
        var built = _artifacts.Built;
        Assert.True(File.Exists(built.PublishedBinary), built.PublishedBinary);
        var version = ExternalTool.Run(built.PublishedBinary, ["--version"]);
        Assert.Equal(0, version.ExitCode);
        // The context has no .git (.dockerignore drops it): the version line must still be well formed.
        Assert.Matches(@"^backupfuse \d+\.\d+\.\d+ \(commit unknown\)\r?$", version.StdOut.Split('\n')[0]);
    }

    [Fact]
    public void DebHasTheLayoutDependenciesAndConffile()
    {
        var built = _artifacts.Built;
        string info = ExternalTool.Check("dpkg-deb", "--info", built.Deb).StdOut;
        Assert.Matches(@"(?m)^ Package: backupfuse$", info);
        Assert.Matches(@"(?m)^ Architecture: amd64$", info);
        Assert.Matches(@"(?m)^ Version: \d+\.\d+\.\d+$", info);
        string depends = Regex.Match(info, @"(?m)^ Depends: (.*)$").Groups[1].Value;
        foreach (var package in new[] { "fuse3", "libfuse3-3", "libdeflate0", "libc6", "libgcc-s1", "libstdc++6", "libssl3" })
        {
            Assert.Contains(package, depends.Split(',', '|').Select(d => d.Trim().Split(' ')[0]));
        }

        string contents = ExternalTool.Check("dpkg-deb", "--contents", built.Deb).StdOut;
        foreach (var (mode, path) in new[]
                 {
                     ("-rwxr-xr-x", "./usr/bin/backupfuse"),
                     ("-rw-r--r--", "./lib/systemd/system/backupfuse@.service"),
                     ("-rw-r--r--", "./lib/systemd/system/backupfuse-boot-check.service"),
                     ("-rw-r--r--", "./lib/systemd/system/backupfuse-boot-check.timer"),
                     ("-rw-r--r--", "./etc/backupfuse/example.conf"),
                     ("-rw-r--r--", "./usr/share/doc/backupfuse/copyright"),
                     ("-rw-r--r--", "./usr/share/doc/backupfuse/operations.md"),
                 })
        {
            Assert.Matches($@"(?m)^{Regex.Escape(mode)} root/root +\d+ \S+ \S+ {Regex.Escape(path)}$", contents);
        }

        Assert.DoesNotMatch(@"(?m)^\S+ (?!root/root)", contents);
        Assert.DoesNotContain(".pdb", contents, StringComparison.Ordinal);
        Assert.Equal("/etc/backupfuse/example.conf", File.ReadAllText(Path.Combine(built.ControlDirectory, "conffiles")).Trim());
        // The NativeAOT program is one native executable of about 16 MiB (the daemon, its libraries and the runtime).
        Assert.True(new FileInfo(Path.Combine(built.ExtractedRoot, "usr/bin/backupfuse")).Length > 8L << 20, "the packaged program is too small to hold the self-contained program");
        Assert.True(new FileInfo(built.Deb).Length > 4L << 20, "the package is too small to hold the self-contained program");
    }

    [Fact]
    public void PackagedBinaryRunsAndReportsTheLibfuseItFinds()
    {
        var built = _artifacts.Built;
        string binary = Path.Combine(built.ExtractedRoot, "usr/bin/backupfuse");
        var r = ExternalTool.Run(binary, ["--version"]);
        Assert.True(r.ExitCode == 0, r.Output);
        string[] lines = r.StdOut.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Matches(@"^backupfuse \d+\.\d+\.\d+ \(commit ", lines[0]);
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^libfuse 3\.\d+\.\d+ \(/\S*libfuse3\.so\.3[\d.]*\)$"));
        Assert.Contains("fusermount3: /usr/bin/fusermount3", lines);
        Assert.Contains("/dev/fuse: present", lines);
        Assert.Contains("deflate: libdeflate (libdeflate.so.0)", lines); // the packaged binary finds it too
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^\.NET 10\.\d+\.\d+, linux-x64, NativeAOT$")); // what ships is compiled ahead of time
        var help = ExternalTool.Run(binary, ["mount", "--help"]);
        Assert.True(help.ExitCode == 0 && help.StdOut.Contains("--foreground", StringComparison.Ordinal), help.Output);
    }

    [SkippableFact]
    public void SystemdUnitVerifiesAndKeepsTheMountVisibleToTheHost()
    {
        string unitPath = Path.Combine(RepoRoot, "packaging/systemd/backupfuse@.service");
        string unit = File.ReadAllText(unitPath);
        var settings = unit.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#' && l[0] != '[' && l.Contains('=', StringComparison.Ordinal))
            .Select(l => (Key: l[..l.IndexOf('=', StringComparison.Ordinal)], Value: l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..])).ToList();
        string Setting(string key) => Assert.Single(settings, s => s.Key == key).Value;

        Assert.Equal("/usr/bin/backupfuse mount ${BACKUPFUSE_DIR} $BACKUPFUSE_ARGS --foreground", Setting("ExecStart"));
        Assert.Equal("/etc/backupfuse/%i.conf", Setting("EnvironmentFile"));
        Assert.Equal("MALLOC_ARENA_MAX=1", Setting("Environment")); // before the configuration file, which may override it
        Assert.True(unit.IndexOf("Environment=MALLOC", StringComparison.Ordinal) < unit.IndexOf("EnvironmentFile=", StringComparison.Ordinal));
        Assert.Equal("notify", Setting("Type"));
        Assert.Equal("on-failure", Setting("Restart"));
        Assert.Equal("SIGTERM", Setting("KillSignal"));
        Assert.Equal("/dev/fuse rw", Setting("DeviceAllow"));
        Assert.Equal("yes", Setting("NoNewPrivileges"));
        Assert.Contains("CAP_SYS_ADMIN", Setting("CapabilityBoundingSet"), StringComparison.Ordinal);
        // Each of these gives the service its own mount namespace with slave propagation: the FUSE mount would
        // then be invisible outside the service.
        string[] namespacing = ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ProtectKernelModules", "ProtectKernelLogs", "ProtectKernelTunables", "ProtectControlGroups", "ProtectProc", "PrivateNetwork", "MountFlags", "TemporaryFileSystem", "BindPaths", "RootDirectory"];
        Assert.DoesNotContain(settings, s => namespacing.Contains(s.Key));

        // systemd-analyze verify also checks that ExecStart is executable: point it at the packaged binary.
        Prerequisite.Tool("systemd-analyze", "systemd");
        using var dir = new TempDirectory("bfunit");
        string binary = Path.Combine(_artifacts.Built.ExtractedRoot, "usr/bin/backupfuse");
        File.WriteAllText(dir["backupfuse@check.service"], unit.Replace("ExecStart=/usr/bin/backupfuse", "ExecStart=" + binary, StringComparison.Ordinal));
        var verify = ExternalTool.Run("systemd-analyze", ["verify", dir["backupfuse@check.service"]], TimeSpan.FromMinutes(1));
        Assert.True(verify.ExitCode == 0 && verify.Output.Trim().Length == 0, $"systemd-analyze verify: {verify.Output}");

        string example = File.ReadAllText(Path.Combine(RepoRoot, "packaging/systemd/example.conf"));
        Assert.Matches(@"(?m)^BACKUPFUSE_DIR=/\S+$", example);
        Assert.Matches("(?m)^BACKUPFUSE_ARGS=\"--images /\\S+\"$", example);
    }

    [Fact]
    public void VersionReportsProgramLibfuseFusermountAndDevice()
    {
        var r = Cli.Run("--version");
        Assert.True(r.ExitCode == 0, r.Output);
        string[] lines = r.StdOut.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(6, lines.Length);
        Assert.Matches(@"^backupfuse 0\.1\.0 \(commit ([0-9a-f]{7}|unknown)\)$", lines[0]);
        Assert.Matches(@"^\.NET 10\.\d+\.\d+, linux-x64, (JIT|NativeAOT)$", lines[1]);
        Assert.Equal(Environment.GetEnvironmentVariable("BACKUPFUSE_EXE") is { Length: > 0 } ? "NativeAOT" : "JIT", lines[1].Split(", ")[^1]); // scripts/test.sh runs the shipped binary
        Assert.Matches(@"^libfuse 3\.\d+\.\d+ \(/\S*libfuse3\.so\.3[\d.]*\)$", lines[2]);
        Assert.Equal("fusermount3: /usr/bin/fusermount3", lines[3]);
        Assert.Equal("/dev/fuse: present", lines[4]);
        Assert.Equal("deflate: libdeflate (libdeflate.so.0)", lines[5]);
        var forced = Cli.RunWithEnv(new Dictionary<string, string> { ["BACKUPFUSE_DEFLATE"] = "zlib" }, "--version");
        Assert.EndsWith("deflate: the runtime's zlib-ng (BACKUPFUSE_DEFLATE=zlib)", forced.StdOut.TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public void MissingLibfuseIsNamedByVersionAndRefusedByMount()
    {
        using var dir = new TempDirectory("bfnolib");
        Directory.CreateDirectory(dir["vms"]);
        Directory.CreateDirectory(dir["img"]);
        string library = ExternalTool.Check("readlink", "-f", "/usr/lib/x86_64-linux-gnu/libfuse3.so.3").StdOut.Trim();
        string hide = $"mount --bind /dev/null '{library}'";

        var version = InPrivateNamespace(hide, Cli.Executable, "--version");
        Assert.True(version.ExitCode == 0, version.Output);
        Assert.Contains("libfuse3 not found: install package fuse3 (Debian/Ubuntu: apt-get install fuse3)", version.StdOut.Split('\n').Select(l => l.TrimEnd('\r')));

        var mount = InPrivateNamespace(hide, Cli.Executable, "mount", dir["vms"], "--images", dir["img"]);
        Assert.Equal(1, mount.ExitCode);
        Assert.Equal("error: libfuse3 not found: install package fuse3 (Debian/Ubuntu: apt-get install fuse3)", mount.StdErr.Trim());
        Assert.False(MountTable.IsMounted(dir["vms"]));
    }

    [Fact]
    public void MissingDevFuseIsNamedByVersionAndRefusedByMount()
    {
        using var dir = new TempDirectory("bfnodev");
        Directory.CreateDirectory(dir["vms"]);
        Directory.CreateDirectory(dir["img"]);
        const string hide = "mount -t tmpfs tmpfs /dev";
        const string expected = "/dev/fuse: missing: load the kernel module (modprobe fuse); in a container run with --device /dev/fuse --cap-add SYS_ADMIN";

        var version = InPrivateNamespace(hide, Cli.Executable, "--version");
        Assert.True(version.ExitCode == 0, version.Output);
        Assert.Contains(expected, version.StdOut.Split('\n').Select(l => l.TrimEnd('\r')));

        var mount = InPrivateNamespace(hide, Cli.Executable, "mount", dir["vms"], "--images", dir["img"], "--foreground");
        Assert.Equal(1, mount.ExitCode);
        Assert.Equal("error: " + expected, mount.StdErr.Trim());
    }

    [Fact]
    public async Task MountTellsSystemdItIsReadyOnlyOnceMounted()
    {
        using var dir = new TempDirectory("bfnotify");
        Directory.CreateDirectory(dir["vms"]);
        Directory.CreateDirectory(dir["img"]);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(dir["notify"]));
        socket.ReceiveTimeout = 30_000;

        var psi = new ProcessStartInfo(Cli.Executable) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "mount", dir["vms"], "--images", dir["img"], "--foreground" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment[SystemdNotify.SocketVariable] = dir["notify"];
        using var daemon = Process.Start(psi)!;
        var stderr = daemon.StandardError.ReadToEndAsync();
        _ = daemon.StandardOutput.ReadToEndAsync();
        try
        {
            var buffer = new byte[4096];
            string message;
            try
            {
                message = Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new Xunit.Sdk.XunitException($"no READY=1 from the daemon within 30 s (exited: {daemon.HasExited}); wire SystemdNotify.Ready(mountPoint) into the mounted callback");
            }

            Assert.Contains("READY=1", message.Split('\n'));
            Assert.True(MountTable.IsMounted(dir["vms"]), "READY=1 was sent before the mount was live");
        }
        finally
        {
            if (!daemon.HasExited)
            {
                ExternalTool.Run("kill", ["-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            }

            if (!daemon.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                daemon.Kill();
            }
        }

        string log = await stderr;
        Assert.True(daemon.ExitCode == 0, $"daemon exited {daemon.ExitCode}: {log}");
        DaemonProcess.WaitUnmounted(dir["vms"], TimeSpan.FromSeconds(10));
    }

    private static ToolResult InPrivateNamespace(string setup, string program, params string[] args)
    {
        string command = setup + " && exec \"$0\" \"$@\"";
        return ExternalTool.Run("unshare", ["--mount", "--propagation", "private", "sh", "-c", command, program, .. args], TimeSpan.FromMinutes(1));
    }

    /// <summary>The Dockerfile's build stage replayed in a copy of its context, and the .deb made from its output.</summary>
    public sealed class Artifacts : IDisposable
    {
        private readonly Lazy<BuiltArtifacts> _built;
        private readonly TempDirectory _work = new("bfpkg");

        public Artifacts()
        {
            _built = new Lazy<BuiltArtifacts>(Build, LazyThreadSafetyMode.ExecutionAndPublication);
        }

        public static string RepoRoot { get; } = FindRepoRoot();

        public BuiltArtifacts Built => _built.Value;

        public void Dispose() => _work.Dispose();

        private static string FindRepoRoot()
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "BackupFuse.sln")) && File.Exists(Path.Combine(dir.FullName, "Dockerfile")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no repository root above {AppContext.BaseDirectory}");
        }

        private BuiltArtifacts Build()
        {
            var docker = Dockerfile.Load(Path.Combine(RepoRoot, "Dockerfile"));
            var build = docker.Stages[0];
            string context = _work["context"];
            Directory.CreateDirectory(context);
            foreach (var copy in build.Instructions.Where(i => i.Keyword == "COPY"))
            {
                foreach (var source in Dockerfile.CopySources(copy.Arguments))
                {
                    CopyRespectingDockerignore(Path.Combine(RepoRoot, source), Path.Combine(context, source));
                }
            }

            string publish = build.Instructions.Single(i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish", StringComparison.Ordinal)).Arguments;
            string outputInImage = Dockerfile.OutputDirectory(publish);
            string output = Path.Combine(_work.Path, outputInImage.TrimStart('/'));
            string command = publish.Replace("-o " + outputInImage, "-o " + output, StringComparison.Ordinal);
            var published = ExternalTool.Run("bash", ["-c", $"cd '{context}' && {command}"], TimeSpan.FromMinutes(8));
            if (published.ExitCode != 0)
            {
                throw new InvalidOperationException($"the Dockerfile's publish failed in a copy of its context: {published.Output}");
            }

            string binary = Path.Combine(output, "backupfuse");
            var packaged = ExternalTool.Run(Path.Combine(RepoRoot, "scripts/package.sh"), ["--fast", "--binary", binary, "--out", _work["deb"]], TimeSpan.FromMinutes(5));
            if (packaged.ExitCode != 0)
            {
                throw new InvalidOperationException($"scripts/package.sh failed: {packaged.Output}");
            }

            string deb = packaged.StdOut.Trim().Split('\n')[^1];
            ExternalTool.Check("dpkg-deb", "-x", deb, _work["root"]);
            ExternalTool.Check("dpkg-deb", "-e", deb, _work["control"]);
            return new BuiltArtifacts(binary, deb, _work["root"], _work["control"]);
        }

        /// <summary>Copies a file or tree, dropping what this repository's .dockerignore drops (bin/, obj/, TestResults/, .git/).</summary>
        private static void CopyRespectingDockerignore(string from, string to)
        {
            string[] ignored = ["bin", "obj", "TestResults", ".git"];
            if (File.Exists(from))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(from, to);
                return;
            }

            Directory.CreateDirectory(to);
            foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
            {
                if (entry is DirectoryInfo && ignored.Contains(entry.Name))
                {
                    continue;
                }

                CopyRespectingDockerignore(entry.FullName, Path.Combine(to, entry.Name));
            }
        }
    }

    public sealed record BuiltArtifacts(string PublishedBinary, string Deb, string ExtractedRoot, string ControlDirectory);

    /// <summary>Just enough of the Dockerfile grammar: stages, instructions with joined continuation lines.</summary>
    private sealed record Dockerfile(IReadOnlyList<Dockerfile.Stage> Stages)
    {
        public sealed record Instruction(string Keyword, string Arguments);

        public sealed record Stage(string Image, string? Alias, List<Instruction> Instructions)
        {
            public Instruction Last(string keyword) => Instructions.Last(i => i.Keyword == keyword);
        }

        public static Dockerfile Load(string path)
        {
            var stages = new List<Stage>();
            var globalArgs = new Dictionary<string, string>(StringComparer.Ordinal);
            var logical = new StringBuilder();
            foreach (var raw in File.ReadAllLines(path))
            {
                string line = raw.Trim();
                if (logical.Length == 0 && (line.Length == 0 || line[0] == '#'))
                {
                    continue;
                }

                if (line.EndsWith('\\'))
                {
                    logical.Append(line[..^1].TrimEnd()).Append(' ');
                    continue;
                }

                logical.Append(line);
                string text = Regex.Replace(logical.ToString(), @"\s+", " ").Trim();
                logical.Clear();
                int space = text.IndexOf(' ', StringComparison.Ordinal);
                var instruction = new Instruction(text[..space].ToUpperInvariant(), text[(space + 1)..]);
                if (instruction.Keyword == "ARG" && stages.Count == 0)
                {
                    // An ARG before the first FROM may be used in FROM lines; its default is what a plain build uses.
                    string[] nameValue = instruction.Arguments.Split('=', 2);
                    globalArgs[nameValue[0]] = nameValue.Length > 1 ? nameValue[1] : string.Empty;
                }
                else if (instruction.Keyword == "FROM")
                {
                    var from = Regex.Match(instruction.Arguments, @"^(\S+)(?: AS (\S+))?$", RegexOptions.IgnoreCase);
                    string image = Regex.Replace(from.Groups[1].Value, @"\$\{(\w+)\}", m => globalArgs[m.Groups[1].Value]);
                    stages.Add(new Stage(image, from.Groups[2].Success ? from.Groups[2].Value : null, []));
                }
                else
                {
                    stages[^1].Instructions.Add(instruction);
                }
            }

            return new Dockerfile(stages);
        }

        /// <summary>The sources of a <c>COPY src... dest</c> (shell form).</summary>
        public static IEnumerable<string> CopySources(string arguments)
        {
            string[] words = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
            return words[..^1];
        }

        /// <summary>The exec-form (JSON array) arguments; fails on the shell form.</summary>
        public static string[] ExecForm(Instruction instruction)
        {
            Assert.StartsWith("[", instruction.Arguments, StringComparison.Ordinal);
            return System.Text.Json.JsonSerializer.Deserialize<string[]>(instruction.Arguments)!;
        }

        /// <summary>The <c>-o DIR</c> of a dotnet publish command.</summary>
        public static string OutputDirectory(string publish) => Regex.Match(publish, @" -o (\S+)").Groups[1].Value;

        /// <summary>The arguments of the first <c>dotnet publish</c> in a text, without -o/--nologo (compared between the Dockerfile and scripts/publish.sh).</summary>
        public static string PublishArguments(string text)
        {
            string joined = Regex.Replace(text.Replace("\\\n", " ", StringComparison.Ordinal), @"[ \t]+", " ");
            string line = Regex.Match(joined, @"dotnet publish [^\n&|>]*").Value;
            return Regex.Replace(line, @" -o \S+| --artifacts-path \S+| --nologo| -v q| -clp:\S+", string.Empty).Trim();
        }
    }
}
