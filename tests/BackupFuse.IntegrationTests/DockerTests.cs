using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - The image is built and run for real on a Docker engine on this machine: the engine that runs, or a dockerd this
//   test starts (and stops again). Registries are out of reach, so nothing is pulled: the base image is a Debian 12
//   minbase made by debootstrap (with fuse3, libdeflate0 and libssl3, the runtime's OpenSSL, so the Dockerfile's
//   install step finds them present and needs no network) and imported with `docker import`; the binary is the
//   NativeAOT binary published as scripts/package.sh does (the one scripts/test.sh published, else from a copy of the
//   sources), and goes in through
//   the Dockerfile's BINARY_FROM=prebuilt stage. The Dockerfile itself is the repository's.
// - Caches under /var/cache/backupfuse-test/: the debootstrap tarball, and the published binary keyed by a hash of
//   the sources it was built from (a stale binary is never tested). The imported base image stays in the engine.
// - The docker run line is the one in the Dockerfile's header comment (the documented one), with its host paths
//   /backups and /srv/backupfuse swapped for this test's directories (same path inside and outside, as documented)
//   and --network none added (the engine here has no bridge). So the documented layout is what is tested.
// - The stale mount appears when the daemon dies and its fusermount3 auto_unmount watchdog dies with it before it
//   unmounts: a race when the container's PID 1 is killed (the kernel SIGKILLs the rest of the container), lost
//   more often with a file open on the mount (a running VM). The test makes it deterministic: it SIGSTOPs the
//   watchdog (seen in /proc from the host), holds the plugin open, kills, asserts the host mount is dead, and
//   runs `docker start` while it still is, so the recovery is tested against the real failure, not a clean exit. The same is then done with SIGKILL to PID 1 from
//   the host, which the restart policy (not a manual start) has to recover.
// - Without an engine the test reports Skipped with the reason (Prerequisite.SkipIf), and fails with it under BACKUPFUSE_REQUIRE_FUSE=1
//   (scripts/test.sh).

/// <summary>The Dockerfile's image, built and run with the documented flags: mounts, reads, stops, recovers from kill.</summary>
[Collection("mounts")]
public sealed class DockerTests
{
    private const string CacheDirectory = "/var/cache/backupfuse-test";
    private const string BaseImage = "backupfuse-base:bookworm-fuse3-ssl";
    private static readonly string[] BasePackages = ["fuse3", "libdeflate0", "libssl3"];
    private readonly ITestOutputHelper _output;

    public DockerTests(ITestOutputHelper output)
    {
        _output = output;
    }

    private static string Docker => File.Exists("/usr/bin/docker") ? "/usr/bin/docker" : "docker";

    [SkippableFact]
    public async Task DocumentedRunServesThePluginsStopsCleanlyAndRecoversFromKill()
    {
        var clock = Stopwatch.StartNew();
        using var engine = DockerEngine.Start();
        Prerequisite.SkipIf(engine.Problem is { } problem ? "no Docker engine: " + problem : null);

        // debootstrap waits on the network and disk, publish on the CPU: side by side they take the longer of the two.
        var baseImage = Task.Run(EnsureBaseImage);
        string binary = PublishedBinary();
        await baseImage;
        string tag = BuildImage(binary);
        _output.WriteLine($"image {tag}: {long.Parse(DockerOk("image", "inspect", "-f", "{{.Size}}", tag).StdOut.Trim(), CultureInfo.InvariantCulture) / (1 << 20)} MiB; prepared in {clock.Elapsed.TotalSeconds:F0} s");

        using var dir = new TempDirectory("bfdocker");
        string backups = dir["backups"];
        string parent = dir["srv"];
        string vms = Path.Combine(parent, "vms");
        Directory.CreateDirectory(backups);
        Directory.CreateDirectory(vms);
        TestDisks.CreateMixed(dir["disk.raw"], 64L << 20, seed: 5);
        Cli.Ok("backup", dir["disk.raw"], Path.Combine(backups, "full.bfi"));
        Cli.Ok("plugin", "create", Path.Combine(backups, "full.bfi"), Path.Combine(vms, "web.vhdx"));
        string plugin = Path.Combine(vms, "web.vhdx");

        // As documented: the bound host directory must be on a shared mount for the FUSE mount to reach the host.
        ExternalTool.Check("mount", "--bind", parent, parent);
        string name = $"backupfuse-test-{Environment.ProcessId}";
        try
        {
            ExternalTool.Check("mount", "--make-shared", parent);
            var run = DocumentedRunArguments(name, tag, backups, parent);
            _output.WriteLine("docker " + string.Join(' ', run));
            DockerOk([.. run]);
            WaitLive(vms, name, "after docker run");
            AssertReadsAsTheDisk(plugin, dir["disk.raw"]);
            string[] daemonEnvironment = File.ReadAllText($"/proc/{State(name, "{{.State.Pid}}")}/environ").Split('\0');
            Assert.Contains("MALLOC_ARENA_MAX=1", daemonEnvironment); // the image's ENV: one malloc arena from the first malloc on

            // docker kill while a VM (here: an open file) uses the disk leaves a dead mount on the host.
            // A VM keeps its disk open after the daemon died (its I/O fails); as long as it does, the host mount stays,
            // dead. The container must start again in that state: with the plugin directory itself bound, Docker
            // refused ("mkdir ...: file exists").
            using (File.OpenRead(plugin))
            {
                StopUnmountHelper(vms);
                DockerOk("kill", name);
                WaitUntil(() => State(name, "{{.State.Running}}") == "false", TimeSpan.FromSeconds(30), "container still running after docker kill");
                WaitUntil(() => MountTable.IsDead(vms), TimeSpan.FromSeconds(10), $"docker kill with the disk open should leave a dead mount at {vms}", () => $"mounted: {MountTable.IsMounted(vms)}, listing: {Listing(vms)}");
                DockerOk("start", name);
                WaitLive(vms, name, "after docker kill + docker start");
            }

            AssertReadsAsTheDisk(plugin, dir["disk.raw"]);

            // The daemon killed from outside Docker (a crash): the restart policy alone brings the mount back.
            string restarts = State(name, "{{.RestartCount}}");
            using (File.OpenRead(plugin))
            {
                StopUnmountHelper(vms);
                ExternalTool.Check("kill", "-KILL", State(name, "{{.State.Pid}}"));
                WaitUntil(() => State(name, "{{.RestartCount}}") != restarts, TimeSpan.FromSeconds(60), "the restart policy did not restart the container");
                WaitLive(vms, name, "after SIGKILL and the restart policy");
            }

            AssertReadsAsTheDisk(plugin, dir["disk.raw"]);

            DockerOk("stop", "-t", "30", name);
            Assert.Equal("0", State(name, "{{.State.ExitCode}}"));
            DaemonProcess.WaitUnmounted(vms, TimeSpan.FromSeconds(10));
            _output.WriteLine($"whole test {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            RunDocker(["rm", "-f", name]);
            if (MountTable.IsMounted(vms))
            {
                ExternalTool.Run("umount", ["-l", vms]);
            }

            ExternalTool.Run("umount", ["-l", parent]);
        }
    }

    /// <summary>The Dockerfile header's docker run line with the test's paths, container name, image and --network none.</summary>
    private static List<string> DocumentedRunArguments(string name, string tag, string backups, string parent)
    {
        var lines = File.ReadAllLines(Path.Combine(PackagingTests.Artifacts.RepoRoot, "Dockerfile"));
        int start = Array.FindIndex(lines, l => l.TrimStart('#', ' ').StartsWith("docker run ", StringComparison.Ordinal));
        Assert.True(start >= 0, "the Dockerfile's header shows no docker run line");
        var text = new StringBuilder();
        for (int i = start; ; i++)
        {
            string line = lines[i].TrimStart('#').Trim();
            text.Append(line.TrimEnd('\\')).Append(' ');
            if (!line.EndsWith('\\'))
            {
                break;
            }
        }

        var words = text.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.Equal(["docker", "run"], words[..2]);
        Assert.Equal("backupfuse", words[^1]);
        words = words[2..^1];
        int nameAt = words.IndexOf("--name");
        Assert.True(nameAt >= 0);
        words[nameAt + 1] = name;
        Assert.Contains("--restart", words);
        Assert.Contains("-v", words);
        var mapped = words.Select(w => w.Replace("/srv/backupfuse", parent, StringComparison.Ordinal).Replace("/backups", backups, StringComparison.Ordinal)).ToList();
        Assert.Contains($"{parent}:{parent}:rshared", mapped);

        // The image's CMD with the same path swap (other arguments replace the command, as documented).
        var cmd = new List<string> { "mount", Path.Combine(parent, "vms"), "--images", backups, "--foreground" };
        Assert.Contains("CMD [\"mount\", \"/srv/backupfuse/vms\", \"--images\", \"/backups\", \"--foreground\"]", File.ReadAllText(Path.Combine(PackagingTests.Artifacts.RepoRoot, "Dockerfile")), StringComparison.Ordinal);
        return ["run", "--network", "none", .. mapped, tag, .. cmd];
    }

    private static void WaitLive(string vms, string name, string when)
    {
        var clock = Stopwatch.StartNew();
        while (!MountTable.IsLive(vms))
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60) || (clock.Elapsed > TimeSpan.FromSeconds(5) && State(name, "{{.State.Status}}") is "exited" or "dead"))
            {
                throw new Xunit.Sdk.XunitException($"{vms} is not a live mount on the host {when}; container {State(name, "{{.State.Status}}")}: {RunDocker(["logs", name]).Output}");
            }

            Thread.Sleep(100);
        }
    }

    private static void AssertReadsAsTheDisk(string plugin, string raw)
    {
        var info = ExternalTool.Run("qemu-img", ["info", "--output=json", plugin]);
        Assert.True(info.ExitCode == 0, info.Output);
        Assert.Contains("\"format\": \"vhdx\"", info.StdOut, StringComparison.Ordinal);
        var compare = ExternalTool.Run("qemu-img", ["compare", "-f", "vhdx", "-F", "raw", plugin, raw], TimeSpan.FromMinutes(2));
        Assert.True(compare.ExitCode == 0, compare.Output);
    }

    private static void WaitUntil(Func<bool> condition, TimeSpan timeout, string failure, Func<string>? state = null)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, state == null ? failure : $"{failure} ({state()})");
            Thread.Sleep(100);
        }
    }

    /// <summary>
    /// SIGSTOPs the fusermount3 auto_unmount watchdog of the mount at <paramref name="mountPoint"/> (it runs in the
    /// container; /proc shows it here). When the container's PID 1 dies the kernel SIGKILLs the watchdog too, and
    /// whether it gets to unmount first is a race; stopped, it loses it, as it did in the reported failure.
    /// </summary>
    private static void StopUnmountHelper(string mountPoint)
    {
        foreach (string proc in Directory.EnumerateDirectories("/proc").Where(d => char.IsAsciiDigit(Path.GetFileName(d)[0])))
        {
            string[] argv;
            try
            {
                argv = File.ReadAllText(Path.Combine(proc, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (argv.Length > 0 && Path.GetFileName(argv[0]).StartsWith("fusermount", StringComparison.Ordinal) && argv.Any(a => a.Contains("auto_unmount", StringComparison.Ordinal)) && argv.Contains(mountPoint))
            {
                ExternalTool.Check("kill", "-STOP", Path.GetFileName(proc));
                return;
            }
        }

        Assert.Fail($"no fusermount3 auto_unmount watchdog found for {mountPoint}");
    }

    private static string Listing(string directory)
    {
        try
        {
            return string.Join(',', Directory.GetFileSystemEntries(directory).Select(Path.GetFileName));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    private static string State(string name, string format) => DockerOk("inspect", "-f", format, name).StdOut.Trim();

    private static ToolResult RunDocker(IEnumerable<string> args, TimeSpan? timeout = null) =>
        ExternalTool.Run(Docker, args, timeout ?? TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["DOCKER_BUILDKIT"] = "1" });

    private static ToolResult DockerOk(params string[] args)
    {
        var r = RunDocker(args, TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 0, $"docker {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        return r;
    }

    /// <summary>Imports the Debian 12 base image, from the cached debootstrap tarball (made on first use).</summary>
    private void EnsureBaseImage()
    {
        if (RunDocker(["image", "inspect", BaseImage]).ExitCode == 0)
        {
            return;
        }

        string tarball = Path.Combine(CacheDirectory, $"debian-bookworm-minbase-{string.Join('-', BasePackages)}.tar");
        if (!File.Exists(tarball))
        {
            Directory.CreateDirectory(CacheDirectory);
            using var root = new TempDirectory("bfdebootstrap");
            string target = root["rootfs"];
            var clock = Stopwatch.StartNew();
            var boot = ExternalTool.Run("debootstrap", ["--variant=minbase", "--include=" + string.Join(',', BasePackages), "bookworm", target, DebianMirror()], TimeSpan.FromMinutes(15));
            Assert.True(boot.ExitCode == 0, $"debootstrap failed: {boot.Output}");
            ExternalTool.Check("bash", "-c", $"rm -rf '{target}'/var/cache/apt/archives/*.deb '{target}'/var/lib/apt/lists/* && tar -C '{target}' -cf '{tarball}.part' . && mv '{tarball}.part' '{tarball}'");
            _output.WriteLine($"debootstrap: {clock.Elapsed.TotalSeconds:F0} s");
        }

        var import = ExternalTool.Run("bash", ["-c", $"'{Docker}' import - {BaseImage} < '{tarball}'"], TimeSpan.FromMinutes(5));
        Assert.True(import.ExitCode == 0, import.Output);
    }

    /// <summary>The Debian mirror apt is configured with (deb822 or one-line sources), else deb.debian.org.</summary>
    private static string DebianMirror()
    {
        var files = new List<string>();
        if (File.Exists("/etc/apt/sources.list"))
        {
            files.Add("/etc/apt/sources.list");
        }

        if (Directory.Exists("/etc/apt/sources.list.d"))
        {
            files.AddRange(Directory.GetFiles("/etc/apt/sources.list.d").Order(StringComparer.Ordinal));
        }

        foreach (string line in files.SelectMany(File.ReadLines).Select(l => l.Trim()))
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string? uri = words.Length >= 2 && words[0] == "URIs:" ? words[1] : words.Length >= 3 && words[0] == "deb" && words[2].StartsWith("bookworm", StringComparison.Ordinal) ? words[1] : null;
            if (uri != null && uri.TrimEnd('/').EndsWith("/debian", StringComparison.Ordinal))
            {
                return uri;
            }
        }

        return "http://deb.debian.org/debian";
    }

    /// <summary>The shipped binary of the current sources: the one scripts/test.sh published (BACKUPFUSE_EXE), else
    /// published here in a copy of them with the Dockerfile's arguments (NativeAOT), cached by their hash.</summary>
    private string PublishedBinary()
    {
        if (Environment.GetEnvironmentVariable("BACKUPFUSE_EXE") is { Length: > 0 })
        {
            return Cli.Executable;
        }

        string repo = PackagingTests.Artifacts.RepoRoot;
        string[] top = ["global.json", "Directory.Build.props", "Directory.Packages.props", ".editorconfig"];
        var files = top.Select(f => Path.Combine(repo, f)).Where(File.Exists)
            .Concat(Directory.EnumerateFiles(Path.Combine(repo, "src"), "*", SearchOption.AllDirectories)
                .Where(f => !f.Split('/').Any(part => part is "bin" or "obj")))
            .Order(StringComparer.Ordinal).ToList();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string file in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(Path.GetRelativePath(repo, file) + "\0"));
            hash.AppendData(File.ReadAllBytes(file));
        }

        string key = Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
        string cached = Path.Combine(CacheDirectory, "publish-" + key, "backupfuse");
        if (File.Exists(cached))
        {
            return cached;
        }

        using var copy = new TempDirectory("bfpublish");
        foreach (string file in files)
        {
            string to = Path.Combine(copy.Path, Path.GetRelativePath(repo, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }

        var clock = Stopwatch.StartNew();
        string output = copy["out"];
        var publish = ExternalTool.Run("dotnet", ["publish", Path.Combine(copy.Path, "src/BackupFuse.Daemon/BackupFuse.Daemon.csproj"), "-c", "Release", "-r", "linux-x64", "--self-contained",
            "-p:PublishAot=true", "-p:DebugType=none", "-o", output, "--nologo"], TimeSpan.FromMinutes(10));
        Assert.True(publish.ExitCode == 0, $"dotnet publish failed: {publish.Output}");
        _output.WriteLine($"publish: {clock.Elapsed.TotalSeconds:F0} s");
        foreach (string old in Directory.Exists(CacheDirectory) ? Directory.GetDirectories(CacheDirectory, "publish-*") : [])
        {
            Directory.Delete(old, recursive: true);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(cached)!);
        File.Copy(Path.Combine(output, "backupfuse"), cached + ".part");
        File.Move(cached + ".part", cached);
        return cached;
    }

    /// <summary>Builds the repository's Dockerfile on the local base image with the prebuilt binary; returns the tag.</summary>
    private static string BuildImage(string binary)
    {
        using var context = new TempDirectory("bfdockerctx");
        File.Copy(Path.Combine(PackagingTests.Artifacts.RepoRoot, "Dockerfile"), context["Dockerfile"]);
        File.Copy(Path.Combine(PackagingTests.Artifacts.RepoRoot, ".dockerignore"), context[".dockerignore"]);
        Directory.CreateDirectory(context["packaging/docker"]);
        File.Copy(binary, context["packaging/docker/backupfuse"]);
        const string tag = "backupfuse-test:latest";
        var build = RunDocker(["build", "--network", "none", "--build-arg", "BUILD_IMAGE=" + BaseImage, "--build-arg", "RUNTIME_IMAGE=" + BaseImage,
            "--build-arg", "BINARY_FROM=prebuilt", "-t", tag, context.Path], TimeSpan.FromMinutes(10));
        Assert.True(build.ExitCode == 0, $"docker build failed: {build.Output}");
        return tag;
    }

    /// <summary>A Docker engine to talk to: the one running, or a dockerd started here (stopped again on dispose).</summary>
    private sealed class DockerEngine : IDisposable
    {
        private int _startedPid;

        public string? Problem { get; private set; }

        public static DockerEngine Start()
        {
            var engine = new DockerEngine();
            if (!ExternalTool.Exists("dockerd") || !(File.Exists("/usr/bin/docker") || ExternalTool.Exists("docker")))
            {
                engine.Problem = "dockerd or the docker client is missing (package docker.io; scripts/install-deps.sh --test installs it)";
                return engine;
            }

            if (RunDocker(["info"]).ExitCode == 0)
            {
                return engine;
            }

            // No engine answers: start one. No bridge and no iptables: the test's containers run with --network none.
            string log = Path.Combine(Path.GetTempPath(), "backupfuse-test-dockerd.log");
            var started = ExternalTool.Run("bash", ["-c", $"dockerd --iptables=false --ip6tables=false --bridge=none >'{log}' 2>&1 </dev/null & echo $!"]);
            engine._startedPid = int.Parse(started.StdOut.Trim(), CultureInfo.InvariantCulture);
            var clock = Stopwatch.StartNew();
            while (RunDocker(["info"]).ExitCode != 0)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(60) || !ProcessAlive(engine._startedPid))
                {
                    string tail = File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(5)) : "(no log)";
                    engine.Problem = $"dockerd did not start within {clock.Elapsed.TotalSeconds:F0} s: {tail}";
                    return engine;
                }

                Thread.Sleep(250);
            }

            return engine;
        }

        public void Dispose()
        {
            if (_startedPid != 0 && ProcessAlive(_startedPid))
            {
                ExternalTool.Run("kill", ["-TERM", _startedPid.ToString(CultureInfo.InvariantCulture)]);
                var clock = Stopwatch.StartNew();
                while (ProcessAlive(_startedPid) && clock.Elapsed < TimeSpan.FromSeconds(30))
                {
                    Thread.Sleep(100);
                }
            }
        }

        private static bool ProcessAlive(int pid)
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                return !p.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }
    }
}
