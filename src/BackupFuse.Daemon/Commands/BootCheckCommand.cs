using System.CommandLine;
using System.Text.RegularExpressions;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.BootCheck;
using BackupFuse.Daemon.Cli;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse boot-check</c>: boot backup points in QEMU and report whether each one boots.</summary>
public static class BootCheckCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var points = new Argument<string[]>("point")
        {
            Description = "Plugin files (their changes included), backup images (.bfi) or VHDX files (e.g. a plugin seen through its mount).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var images = ImagesOption.Create();
        var latest = new Option<bool>("--latest") { Description = "Also check the newest point of each chain found in the --images directories." };
        var timeout = new Option<int>("--timeout") { Description = "Seconds a point may take to boot before it fails with 'timeout' (default 300).", DefaultValueFactory = _ => 300 };
        var memory = ByteSizeOption.Create("--memory", "Guest memory, e.g. 512M, 2G (default 1G).");
        var accel = new Option<string>("--accel") { Description = "auto (KVM when a probe boot shows it works, else TCG), kvm or tcg.", DefaultValueFactory = _ => "auto" };
        var expect = new Option<string?>("--expect") { Description = "Regular expression on the serial console that means booted (e.g. 'login:'); the strongest signal." };
        var parallel = new Option<int>("--parallel") { Description = "Points booted at the same time (default 1).", DefaultValueFactory = _ => 1 };
        var report = new Option<string>("--report") { Description = "Directory for the report (index.html, report.json, a subdirectory per point); created if missing (default ./boot-check-report).", DefaultValueFactory = _ => "boot-check-report" };
        var firmware = new Option<string>("--firmware") { Description = "auto (from the partition table: UEFI when there is an EFI system partition), bios or uefi.", DefaultValueFactory = _ => "auto" };
        var bus = new Option<string>("--disk-bus") { Description = "How the disk is attached: sata (default; every OS has a driver), virtio or ide.", DefaultValueFactory = _ => "sata" };
        var settle = new Option<int>("--settle") { Description = "Seconds the screen must stay unchanged (with quiet consoles) to count as booted (default 20).", DefaultValueFactory = _ => 20 };
        var passphrase = new PassphraseOptions();
        accel.Validators.Add(r => OneOf(r, "--accel", "auto", "kvm", "tcg"));
        firmware.Validators.Add(r => OneOf(r, "--firmware", "auto", "bios", "uefi"));
        bus.Validators.Add(r => OneOf(r, "--disk-bus", "sata", "virtio", "ide"));
        foreach (var (option, name, min) in new[] { (timeout, "--timeout", 1), (parallel, "--parallel", 1), (settle, "--settle", 1) })
        {
            option.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() < min)
                {
                    r.AddError($"{name} must be at least {min}");
                }
            });
        }

        expect.Validators.Add(r =>
        {
            try
            {
                _ = new Regex(r.GetValueOrDefault<string?>() ?? string.Empty);
            }
            catch (ArgumentException e)
            {
                r.AddError($"--expect: not a regular expression: {e.Message}");
            }
        });

        var command = new Command("boot-check",
            "Boot each backup point in QEMU and report whether it boots: no network, nothing persisted (QEMU writes only\n" +
            "to a temporary overlay; the backups and a plugin's changes are only read), serial console captured, QMP control.\n" +
            "Verdicts, strongest first: --expect on the serial console, a qemu-guest-agent answer, the screen (booted when it\n" +
            "has stopped changing and shows no failure). Failures are named: no bootable device, kernel panic, GRUB rescue,\n" +
            "blank screen, timeout. Per point: the last screen (PNG), the serial log, the verdict and the time to boot; for\n" +
            "the run: report.json and index.html with thumbnails. Exit code 0 only if every point booted.\n" +
            "Needs qemu-system-x86_64 (package qemu-system-x86) and, for UEFI guests, OVMF (package ovmf).\n\n" +
            "Examples:\n" +
            "  backupfuse boot-check /backups/web01-1122.bfi --expect 'login:'\n" +
            "  backupfuse boot-check /vms/web01.vhdx /vms/db01.vhdx --report /var/lib/backupfuse/boot-check --parallel 2\n" +
            "  backupfuse boot-check --latest --images /backups --report /var/www/boot-check");
        command.Arguments.Add(points);
        foreach (var o in new Option[] { images, latest, timeout, memory, accel, expect, parallel, report, firmware, bus, settle })
        {
            command.Options.Add(o);
        }

        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            var inputs = (parse.GetValue(points) ?? []).ToList();
            if (parse.GetValue(latest))
            {
                var dirs = (parse.GetValue(images) ?? []).Where(d => !BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(d)).ToList();
                if (dirs.Count == 0)
                {
                    throw new CliError("--latest needs --images DIR (a local directory of backup images)");
                }

                var tips = ChainTips.Newest(new ImageCatalog(ImagesOption.Directories(parse, images)));
                if (tips.Count == 0)
                {
                    throw new CliError($"--latest: no backup images in {string.Join(", ", dirs)}");
                }

                inputs.AddRange(tips);
            }

            if (inputs.Count == 0)
            {
                throw new CliError("nothing to check: name plugins or images, or use --latest --images DIR");
            }

            if (!OnPath("qemu-system-x86_64"))
            {
                throw new CliError("qemu-system-x86_64 not found: boot-check needs the package qemu-system-x86");
            }

            long memoryBytes = parse.GetValue(memory) ?? (1L << 30);
            string fw = parse.GetValue(firmware)!;
            var settings = new BootSettings
            {
                Timeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
                MemoryMiB = (int)Math.Clamp(memoryBytes >> 20, 64, 1 << 20),
                Accel = AccelProbe.Resolve(parse.GetValue(accel)!),
                Expect = parse.GetValue(expect) is { } e ? new Regex(e, RegexOptions.Multiline, TimeSpan.FromSeconds(1)) : null,
                Firmware = fw == "auto" ? null : fw == "uefi" ? Firmware.Uefi : Firmware.Bios,
                DiskBus = parse.GetValue(bus)!,
                Settle = TimeSpan.FromSeconds(parse.GetValue(settle)),
            };
            string reportDir = Path.GetFullPath(parse.GetValue(report)!);
            var pass = passphrase.Resolve(parse);
            var run = new BootCheckRun(settings, reportDir, point => BackupPointResolver.OpenChain(point, parse, images, pass));
            var results = run.Run(inputs, parse.GetValue(parallel), token);
            foreach (var r in results)
            {
                string time = r.Seconds is { } s ? $" in {s:0.0} s" : string.Empty;
                Console.WriteLine($"{(r.Booted ? "BOOTED" : "FAILED")} {r.Name}: {(r.Booted ? string.Empty : r.Verdict + ": ")}{r.Detail}{time}");
            }

            int ok = results.Count(r => r.Booted);
            Console.WriteLine($"{ok} of {results.Count} booted; report: {Path.Combine(reportDir, BootReport.HtmlName)}");
            return ok == results.Count ? ExitCodes.Ok : ExitCodes.Error;
        });
        return command;
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, program)));

    private static void OneOf(System.CommandLine.Parsing.OptionResult r, string name, params string[] values)
    {
        string? value = r.GetValueOrDefault<string>();
        if (!values.Contains(value))
        {
            r.AddError($"{name} {value}: valid values: {string.Join(", ", values)}");
        }
    }
}
