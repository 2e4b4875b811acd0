using System.Diagnostics;
using System.Security.Cryptography;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

// Design notes:
// - What the VM-boot test classes share: the prerequisites of scripts/guest (checked up front, so a missing one is a
//   Skipped test with the package to install, never a failure deep inside a script and never a silent pass), running
//   those scripts, one boot through boot-vm.sh (its console log and how long it took), and hashing the images
//   directory (backups are never modified).
// - The scripts themselves install a missing package when apt can; the check here only looks, it installs nothing.

/// <summary>Boots the small test guest of scripts/guest under QEMU (TCG) for the boot test classes.</summary>
internal static class GuestBoot
{
    /// <summary>The repository root (scripts/ lives there).</summary>
    public static readonly string Repo = FindRepo();

    /// <summary>Why the guest cannot be built or booted here (the first missing piece and its package), or null.</summary>
    public static string? Missing()
    {
        (string Program, string Package)[] tools =
        [
            ("qemu-system-x86_64", "qemu-system-x86"), ("extlinux", "extlinux"), ("mkfs.ext4", "e2fsprogs"),
            ("debugfs", "e2fsprogs"), ("sfdisk", "fdisk"), ("cpio", "cpio"),
        ];
        foreach (var (program, package) in tools)
        {
            if (!ExternalTool.Exists(program))
            {
                return $"{program} is missing (package {package}; scripts/install-deps.sh --test installs it)";
            }
        }

        if (!Directory.Exists("/boot") || !Directory.EnumerateFiles("/boot", "vmlinuz-*").Any())
        {
            return "no kernel in /boot (package linux-image-amd64; scripts/install-deps.sh --test installs it)";
        }

        if (!File.Exists("/bin/busybox"))
        {
            return "/bin/busybox is missing (package busybox-static; scripts/install-deps.sh --test installs it)";
        }

        if (!File.Exists("/usr/lib/syslinux/mbr/gptmbr.bin") && !File.Exists("/usr/lib/EXTLINUX/gptmbr.bin"))
        {
            return "gptmbr.bin is missing (package syslinux-common; scripts/install-deps.sh --test installs it)";
        }

        return Environment.UserName == "root" ? null : "building the guest disk needs root (loop mount for extlinux)";
    }

    /// <summary>Runs a helper under scripts/ and throws with its output unless it exits 0.</summary>
    public static void Script(string name, string[] args, params (string Key, string Value)[] env)
    {
        var r = ExternalTool.Run(Path.Combine(Repo, "scripts", name), args, TimeSpan.FromMinutes(8), env.ToDictionary(e => e.Key, e => e.Value));
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"{name} exited {r.ExitCode}: {r.Output}");
        }
    }

    /// <summary>
    /// Boots <paramref name="drive"/> (a QEMU -drive spec) with boot-vm.sh, asserts the guest booted, powered off and
    /// reported no error, and returns its console log and the time the boot took.
    /// </summary>
    public static (string Log, TimeSpan Took) Boot(string drive, string logPath, string? append)
    {
        var args = new List<string> { "--drive", drive, "--log", logPath, "--timeout", "240" };
        if (append != null)
        {
            args.Add("--append-extra");
            args.Add(append);
        }

        var clock = Stopwatch.StartNew();
        var r = ExternalTool.Run(Path.Combine(Repo, "scripts", "guest", "boot-vm.sh"), [.. args], TimeSpan.FromMinutes(8));
        clock.Stop();
        string log = File.Exists(logPath) ? File.ReadAllText(logPath).Replace("\r", string.Empty, StringComparison.Ordinal) : string.Empty;
        Assert.True(r.ExitCode == 0, $"boot-vm.sh exited {r.ExitCode}: {r.Output}\n{log}");
        Assert.Contains("BFGUEST-BOOTED", log, StringComparison.Ordinal);
        Assert.DoesNotContain("BFGUEST-ERROR", log, StringComparison.Ordinal);
        return (log, clock.Elapsed);
    }

    /// <summary>
    /// Puts <paramref name="hook"/> into the test guest's boot disk <paramref name="bootRaw"/> as /etc/bf-hook.sh (its init
    /// runs it before powering off; a hook put there by an earlier call is replaced), boots it with <paramref name="secondDrive"/> (a QEMU -drive spec) as a second disk,
    /// asserts that the boot and the hook succeeded, and returns the console log (CR removed).
    /// </summary>
    public static string BootWithHook(string bootRaw, string hook, string secondDrive, string workDir, string daemonLog)
    {
        string hookFile = Path.Combine(workDir, "bf-hook.sh");
        File.WriteAllText(hookFile, hook.Replace("\r", string.Empty, StringComparison.Ordinal));
        ExternalTool.Run("debugfs", ["-w", "-R", "rm /etc/bf-hook.sh", bootRaw + "?offset=1048576"]); // a previous boot's hook (debugfs's write never replaces)
        ExternalTool.Check("debugfs", "-w", "-R", $"write {hookFile} /etc/bf-hook.sh", bootRaw + "?offset=1048576");
        string logPath = Path.Combine(workDir, "console.log");
        var r = ExternalTool.Run(Path.Combine(Repo, "scripts", "guest", "boot-vm.sh"),
            ["--drive", $"file={bootRaw},format=raw", "--log", logPath, "--timeout", "240", "--accel", "tcg", "--", "-drive", secondDrive],
            TimeSpan.FromMinutes(8));
        string console = File.Exists(logPath) ? File.ReadAllText(logPath).Replace("\r", string.Empty, StringComparison.Ordinal) : string.Empty;
        Assert.True(r.ExitCode == 0, $"boot-vm.sh exited {r.ExitCode}: {r.Output}\n{console}\n{daemonLog}");
        Assert.Contains("BFGUEST-HOOK-EXIT:0", console, StringComparison.Ordinal);
        return console;
    }

    /// <summary>Reads a file of a flat raw copy of the guest disk (its ext4 partition starts at 1 MiB) with debugfs.</summary>
    public static string ReadGuestFile(string flatRaw, string guestPath) =>
        ExternalTool.Check("debugfs", "-R", $"cat {guestPath}", flatRaw + "?offset=1048576").StdOut;

    /// <summary>A fingerprint of every file in <paramref name="dir"/> (the backups must never change).</summary>
    public static string HashDir(string dir) =>
        string.Join(",", Directory.GetFiles(dir).Order(StringComparer.Ordinal).Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

    private static string FindRepo()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "BackupFuse.sln")))
            {
                return d.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// The test guest's disk built once per test class, in its two states: <see cref="FullDisk"/> (/etc/bf-check reads
/// "full-backup") and <see cref="IncDisk"/> ("from-incremental"), with local backups of both (full, incremental).
/// </summary>
public sealed class GuestBackupsFixture : IDisposable
{
    /// <summary>Builds the disks and backups, or records why it cannot (<see cref="Missing"/>).</summary>
    public GuestBackupsFixture()
    {
        Missing = GuestBoot.Missing();
        if (Missing != null)
        {
            return;
        }

        Directory.CreateDirectory(Images);
        GuestBoot.Script("guest/make-boot-disk.sh", [FullDisk, "128"], ("BF_CHECK_CONTENT", "full-backup"));
        Cli.Ok("backup", FullDisk, FullImage);
        ExternalTool.Check("cp", "--sparse=always", FullDisk, IncDisk);
        GuestBoot.Script("guest/set-check-file.sh", [IncDisk, "from-incremental"]);
        Cli.Ok("backup", IncDisk, IncImage, "--parent", FullImage);
    }

    /// <summary>Why the guest cannot be built or booted here, or null.</summary>
    public string? Missing { get; }

    /// <summary>Scratch space of the class.</summary>
    public TempDirectory Dir { get; } = new("bfguest");

    /// <summary>The local backup directory (full and incremental).</summary>
    public string Images => Dir["images"];

    /// <summary>The guest disk as the full backup saw it.</summary>
    public string FullDisk => Dir["guest-full.raw"];

    /// <summary>The guest disk as the incremental saw it.</summary>
    public string IncDisk => Dir["guest-inc.raw"];

    /// <summary>The full backup.</summary>
    public string FullImage => Path.Combine(Images, "guest-full.bfi");

    /// <summary>The incremental backup (parent: the full one).</summary>
    public string IncImage => Path.Combine(Images, "guest-inc.bfi");

    /// <summary>Removes the scratch space.</summary>
    public void Dispose() => Dir.Dispose();
}
