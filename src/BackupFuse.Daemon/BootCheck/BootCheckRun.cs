using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Vhdx;
using Serilog;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - One run of `backupfuse boot-check`: opens every point named, serves them (DiskServer), boots them N at a time
//   (BootMachine), writes each point's files (screen.png, thumb.png, serial.log, firmware.log) into
//   <report>/<NN-name>/ and the run's report.json and index.html.
// - What a point is: a backup image (its chain); a plugin file outside a mount (its chain plus its changes file,
//   read-only: the disk its VMs see, as `export` flattens it); or a VHDX file (a plugin seen through a live mount,
//   or any VHDX), which QEMU reads itself. Nothing is ever written to any of them: the stacks are opened without
//   creating changes, the served files are read-only, and QEMU writes only into its temporary overlay.
// - A plugin whose disk a VM has open for writing is refused (its changes would be read torn), as export does.
// - A point that cannot be opened or booted gets an "error" verdict with one line and the others still run.
// - Threads: points are booted in parallel (a bounded Parallel.ForEach); each machine is one thread's; results are
//   collected by index, so the report keeps the order of the command line.

/// <summary>Boots a list of backup points and writes the report.</summary>
public sealed class BootCheckRun(BootSettings settings, string reportDir, Func<BackupPoint, BackupChain> openChain)
{
    /// <summary>Width of the report's thumbnails.</summary>
    public const int ThumbnailWidth = 320;

    /// <summary>Checks <paramref name="inputs"/> (plugins, images, VHDX files) and returns their results in order.</summary>
    public IReadOnlyList<BootResult> Run(IReadOnlyList<string> inputs, int parallel, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var started = DateTime.UtcNow;
        Directory.CreateDirectory(reportDir);
        var names = UniqueNames(inputs);
        var points = new Prepared?[inputs.Count];
        var results = new BootResult?[inputs.Count];
        try
        {
            for (int i = 0; i < inputs.Count; i++)
            {
                try
                {
                    points[i] = Prepare(inputs[i]);
                }
                catch (Exception e) when (e is CliError or IOException or InvalidDataException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
                {
                    Log.Error("{Reason}", e.Message); // the message names the file
                    results[i] = new BootResult { Name = names[i], Input = inputs[i], Verdict = "error", Detail = e.Message };
                }
            }

            var served = new Dictionary<string, Func<IBlockSource>>(StringComparer.Ordinal);
            for (int i = 0; i < points.Length; i++)
            {
                if (points[i]?.Stack is { } stack)
                {
                    served[$"{names[i]}.raw"] = () => stack.GuestDisk;
                }
            }

            using var server = served.Count > 0 ? DiskServer.Start(served) : null;
            Parallel.For(0, inputs.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel), CancellationToken = token }, i =>
            {
                if (points[i] is { } p)
                {
                    string disk = p.Stack != null ? server!.PathOf($"{names[i]}.raw") : p.VhdxPath!;
                    results[i] = Boot(names[i], inputs[i], p, disk, p.Stack != null ? "raw" : "vhdx", token);
                }
            });
        }
        finally
        {
            foreach (var p in points)
            {
                p?.Stack?.Dispose();
            }
        }

        var done = results.Select(r => r!).ToList();
        BootReport.Write(reportDir, done, started, DateTime.UtcNow, settings.Accel);
        return done;
    }

    private BootResult Boot(string name, string input, Prepared point, string disk, string format, CancellationToken token)
    {
        string outDir = Path.Combine(reportDir, name);
        var firmware = settings.Firmware is { } forced ? (forced, $"{forced.ToString().ToLowerInvariant()} (--firmware)") : point.Firmware;
        Log.Information("{Name}: booting {Input} ({Firmware}, {Accel})", name, input, firmware.Item2, settings.Accel);
        using var machine = new BootMachine(settings, outDir);
        (string Verdict, string Detail, double Seconds) verdict;
        try
        {
            verdict = machine.Run(disk, format, firmware.Item1, token);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            // QEMU did not start, OVMF is missing, QEMU stopped answering: this point cannot be judged.
            verdict = ("error", e.Message, 0);
        }

        string? screenshot = null, thumbnail = null, text = null;
        if (machine.LastScreen is { } screen)
        {
            File.WriteAllBytes(Path.Combine(outDir, "screen.png"), PngEncoder.Encode(screen));
            File.WriteAllBytes(Path.Combine(outDir, "thumb.png"), PngEncoder.EncodeThumbnail(screen, ThumbnailWidth));
            screenshot = $"{name}/screen.png";
            thumbnail = $"{name}/thumb.png";
            if (machine.LastScreenText is { } t)
            {
                text = t;
                File.WriteAllText(Path.Combine(outDir, "screen.txt"), t + "\n");
            }
        }

        bool booted = verdict.Verdict == "booted";
        Log.Write(booted ? Serilog.Events.LogEventLevel.Information : Serilog.Events.LogEventLevel.Warning,
            "{Name}: {Verdict} after {Seconds:0.0} s: {Detail}", name, booted ? "booted" : "FAILED (" + verdict.Verdict + ")", verdict.Seconds, verdict.Detail);
        return new BootResult
        {
            Name = name,
            Input = input,
            Booted = booted,
            Verdict = verdict.Verdict,
            Detail = verdict.Detail,
            Seconds = verdict.Seconds,
            Firmware = firmware.Item2,
            Accel = settings.Accel,
            Screenshot = screenshot,
            Thumbnail = thumbnail,
            SerialLog = File.Exists(machine.SerialLogPath) ? $"{name}/serial.log" : null,
            FirmwareLog = File.Exists(machine.FirmwareLogPath) ? $"{name}/firmware.log" : null,
            ScreenText = text,
        };
    }

    private Prepared Prepare(string input)
    {
        var point = BackupPointResolver.Resolve(input);
        if (point.IsVhdx)
        {
            using var file = new FileBlockSource(input);
            using var vhdx = VhdxReader.Open(file, input);
            return new Prepared(null, Path.GetFullPath(input), FirmwareChooser.Choose(vhdx));
        }

        var chain = openChain(point);
        ChangesLocation? changes = null;
        if (point.PluginPath != null)
        {
            changes = ChangesLocation.ForPlugin(Path.GetFullPath(point.PluginPath));
            var users = OpenFileScanner.Users(point.PluginPath).Where(u => u.Writing).Concat(changes.Exists ? OpenFileScanner.Users(changes.ChangesFile) : []).ToList();
            if (users.Count > 0)
            {
                chain.Dispose();
                throw new CliError($"{point.PluginPath} is in use by {OpenFileScanner.Describe(users)}; stop the VM first (or boot-check the VHDX through the mount)");
            }
        }

        var stack = BackupPointStack.Open(chain, point.Plugin ?? new PluginFile(1, chain.Top.Path, chain.Top.Id), changes, create: false);
        try
        {
            using var disk = stack.GuestDisk;
            return new Prepared(stack, null, FirmwareChooser.Choose(disk));
        }
        catch
        {
            stack.Dispose();
            throw;
        }
    }

    private static List<string> UniqueNames(IReadOnlyList<string> inputs)
    {
        var names = new List<string>();
        for (int i = 0; i < inputs.Count; i++)
        {
            string stem = Path.GetFileNameWithoutExtension(inputs[i].TrimEnd('/'));
            var safe = new string([.. stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_')]);
            names.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{i + 1:00}-{(safe.Length == 0 ? "disk" : safe)}"));
        }

        return names;
    }

    private sealed record Prepared(BackupPointStack? Stack, string? VhdxPath, (Firmware, string) Firmware);
}
