using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Serilog;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - One QEMU for one backup point, and the loop that judges it. The disk is never written: QEMU boots a qcow2
//   overlay (in a private temporary directory, deleted afterwards) whose backing file is the served disk, which QEMU
//   opens read-only; the overlay is dropped with the directory. No network device (-nic none), no host files but the
//   firmware's.
// - Signals, strongest first, checked every tick (Tick): the user's --expect regex on the serial console; failure
//   messages (FailureSigns) on the serial console and the firmware's debug console; QEMU's own state (a pvpanic
//   report, a guest that powered off or reset: -action makes both pause the machine so its last screen can still be
//   taken); a guest-agent answer; and the screen, dumped every ScreenInterval: text on a text-mode screen is read
//   for failure messages, and a screen unchanged (up to a blinking cursor) for Settle while the consoles are quiet
//   too is booted, unless it is a single colour or QEMU's own "display not initialized" screen (taken while the
//   machine is still stopped at -S; both are a blank screen after 3 x Settle) or a text screen only the firmware or
//   boot loader wrote (PreBootScreen: the kernel may still be loading behind it).
// - Time to boot is measured from QEMU's start to the moment the deciding state began (for the screen: when the
//   settled screen first appeared), so a long Settle does not inflate it.
// - One thread per machine; QEMU is always stopped (quit, then kill) before Run returns.

/// <summary>Boots one disk in QEMU and decides whether it booted.</summary>
public sealed class BootMachine : IDisposable
{
    /// <summary>Screens differing in fewer pixels than this fraction count as unchanged (a blinking cursor).</summary>
    public const double SameScreen = 0.002;

    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan AgentInterval = TimeSpan.FromSeconds(5);

    private readonly BootSettings _settings;
    private readonly DirectoryInfo _work;
    private readonly string _outDir;
    private readonly ConsoleLog _serial;
    private readonly ConsoleLog _firmwareLog;
    private readonly Stopwatch _clock = new();
    private Process? _qemu;
    private QmpClient? _qmp;
    private GuestAgentPing? _agent;
    private ScreenImage? _placeholder;
    private readonly System.Text.StringBuilder _stderr = new();

    /// <summary>Prepares a machine whose logs and screens go to <paramref name="outDir"/>.</summary>
    public BootMachine(BootSettings settings, string outDir)
    {
        _settings = settings ?? throw new ArgumentNullException(nameof(settings));
        _outDir = outDir;
        Directory.CreateDirectory(outDir);
        _work = Directory.CreateTempSubdirectory("backupfuse-boot-");
        _serial = new ConsoleLog(Path.Combine(outDir, "serial.log"));
        _firmwareLog = new ConsoleLog(Path.Combine(outDir, "firmware.log"));
        File.Delete(_serial.Path);
        File.Delete(_firmwareLog.Path);
    }

    /// <summary>The last screen taken, if any.</summary>
    public ScreenImage? LastScreen { get; private set; }

    /// <summary>The last text-mode screen's text, if the last screen was one.</summary>
    public string? LastScreenText { get; private set; }

    /// <summary>Where the serial console log is.</summary>
    public string SerialLogPath => _serial.Path;

    /// <summary>Where the firmware's debug console log is.</summary>
    public string FirmwareLogPath => _firmwareLog.Path;

    /// <summary>
    /// Boots <paramref name="disk"/> (a file QEMU reads as <paramref name="format"/>) and returns the verdict, its
    /// detail, and the seconds from QEMU's start to it. The last screen is in <see cref="LastScreen"/>.
    /// </summary>
    public (string Verdict, string Detail, double Seconds) Run(string disk, string format, Firmware firmware, CancellationToken token)
    {
        string overlay = Path.Combine(_work.FullName, "overlay.qcow2");
        var img = RunTool("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format, "-b", disk, overlay]);
        if (img.ExitCode != 0)
        {
            return (FailureSigns.QemuFailed, $"qemu-img create (overlay over {disk}): {img.Output.Trim()}", 0);
        }

        Start(overlay, firmware);
        try
        {
            return Judge(token);
        }
        finally
        {
            Stop();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Stop();
        try
        {
            _work.Delete(recursive: true);
        }
        catch (IOException e)
        {
            Log.Warning("boot-check: could not remove {Dir}: {Reason}", _work.FullName, e.Message);
        }
    }

    /// <summary>The OVMF code and variable-store template, or null when the package is not installed.</summary>
    public static (string Code, string Vars)? FindOvmf()
    {
        foreach (var (code, vars) in new[]
        {
            ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
            ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
            ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
        })
        {
            if (File.Exists(code) && File.Exists(vars))
            {
                return (code, vars);
            }
        }

        return null;
    }

    private void Start(string overlay, Firmware firmware)
    {
        string qmpSocket = Path.Combine(_work.FullName, "qmp.sock");
        string agentSocket = Path.Combine(_work.FullName, "qga.sock");
        var args = new List<string>
        {
            "-S", "-name", "backupfuse-boot-check", "-machine", "pc", "-accel", _settings.Accel,
            "-m", _settings.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-nodefaults", "-no-user-config", "-nic", "none", "-vga", "std", "-display", "none",
            "-chardev", $"file,id=serial0,path={_serial.Path}", "-serial", "chardev:serial0",
            "-chardev", $"file,id=fwlog,path={_firmwareLog.Path}", "-device", "isa-debugcon,iobase=0x402,chardev=fwlog",
            "-qmp", $"unix:{qmpSocket},server=on,wait=off",
            "-chardev", $"socket,id=qga0,path={agentSocket},server=on,wait=off",
            "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-device", "pvpanic",
            "-action", "reboot=shutdown,shutdown=pause,panic=pause",
            "-drive", $"file={overlay},format=qcow2,if=none,id=disk0,cache=unsafe",
        };
        args.AddRange(_settings.DiskBus switch
        {
            "virtio" => ["-device", "virtio-blk-pci,drive=disk0,bootindex=1"],
            "ide" => ["-device", "ide-hd,drive=disk0,bus=ide.0,unit=0,bootindex=1"],
            _ => ["-device", "ahci,id=ahci0", "-device", "ide-hd,drive=disk0,bus=ahci0.0,bootindex=1"],
        });
        if (firmware == Firmware.Uefi)
        {
            var ovmf = FindOvmf() ?? throw new InvalidOperationException("UEFI firmware (OVMF) not found: install the package ovmf");
            string vars = Path.Combine(_work.FullName, "OVMF_VARS.fd");
            File.Copy(ovmf.Vars, vars);
            args.AddRange(["-drive", $"if=pflash,format=raw,unit=0,readonly=on,file={ovmf.Code}", "-drive", $"if=pflash,format=raw,unit=1,file={vars}"]);
        }

        var psi = new ProcessStartInfo("qemu-system-x86_64") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Log.Debug("boot-check: qemu-system-x86_64 {Args}", string.Join(' ', args));
        _clock.Start();
        try
        {
            _qemu = Process.Start(psi) ?? throw new InvalidOperationException("qemu-system-x86_64 did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"qemu-system-x86_64: {e.Message} (package qemu-system-x86)", e);
        }

        _qemu.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        _qemu.BeginErrorReadLine();
        _qemu.OutputDataReceived += (_, _) => { };
        _qemu.BeginOutputReadLine();
        _qemu.StandardInput.Close();
        try
        {
            _qmp = QmpClient.Connect(qmpSocket, TimeSpan.FromSeconds(30), () => !_qemu.HasExited);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            _qemu.WaitForExit(2000);
            throw new InvalidOperationException($"qemu-system-x86_64 did not start: {QemuError(e.Message)}", e);
        }

        _agent = new GuestAgentPing(agentSocket);

        // QEMU's own "Guest has not initialized the display (yet)" screen, taken before the guest runs: that screen,
        // however long it stays, is not the guest's.
        _placeholder = TakeScreen();
        LastScreen = null;
        LastScreenText = null;
        _qmp.Execute("cont");
    }

    private (string Verdict, string Detail, double Seconds) Judge(CancellationToken token)
    {
        var settle = _settings.Settle;
        TimeSpan? lastDump = null;
        var stableSince = TimeSpan.Zero;
        var consoleChangedAt = TimeSpan.Zero;
        var nextAgent = AgentInterval;
        ScreenImage? reference = null;
        while (true)
        {
            token.ThrowIfCancellationRequested();
            var now = _clock.Elapsed;
            if (_serial.Poll() | _firmwareLog.Poll())
            {
                // The texts are matched again only when they grew (a chatty guest's log may be megabytes).
                consoleChangedAt = now;
                if (FromConsoles(now) is { } fromText)
                {
                    return fromText;
                }
            }

            // QEMU's own view: a pvpanic report, a power-off or reset (paused by -action), or QEMU gone.
            string status = _qemu!.HasExited ? "exited" : Status();
            if (status is "exited" or "shutdown" or "guest-panicked" or "internal-error")
            {
                _serial.Poll();
                _firmwareLog.Poll();
                if (FromConsoles(now) is { } late)
                {
                    return late;
                }

                if (status != "exited")
                {
                    TakeScreen();
                }

                return status switch
                {
                    "guest-panicked" => (FailureSigns.KernelPanic, "the guest reported a panic (pvpanic)", now.TotalSeconds),
                    "shutdown" => (FailureSigns.PoweredOff, "the guest powered off or reset before it was seen booted", now.TotalSeconds),
                    "internal-error" => (FailureSigns.QemuFailed, $"QEMU stopped the guest on an internal error: {QemuError(string.Empty)}", now.TotalSeconds),
                    _ => (FailureSigns.QemuFailed, $"QEMU exited (code {_qemu.ExitCode}): {QemuError(string.Empty)}", now.TotalSeconds),
                };
            }

            if (now >= nextAgent)
            {
                nextAgent = now + AgentInterval;
                if (_agent!.Ping(TimeSpan.FromMilliseconds(300)))
                {
                    TakeScreen();
                    return ("booted", "qemu-guest-agent answered", now.TotalSeconds);
                }
            }

            if (lastDump == null || now - lastDump >= _settings.ScreenInterval)
            {
                lastDump = now;
                var screen = TakeScreen();
                if (LastScreenText != null && FailureSigns.Find(LastScreenText) is { } onScreen)
                {
                    return (onScreen.Failure, $"on the screen: {onScreen.Line}", now.TotalSeconds);
                }

                if (screen != null && screen.DifferenceFrom(reference) >= SameScreen)
                {
                    // Compared with the first image of a state, not the previous one: a slow drift still counts as change.
                    reference = screen;
                    stableSince = now;
                }
                else if (screen != null)
                {
                    var steady = now - (stableSince > consoleChangedAt ? stableSince : consoleChangedAt);
                    bool placeholder = _placeholder != null && screen.DifferenceFrom(_placeholder) < SameScreen;
                    bool preBoot = placeholder || (LastScreenText != null && PreBootScreen.IsPreBoot(LastScreenText));
                    if (!screen.IsSingleColour && !preBoot && steady >= settle)
                    {
                        var since = stableSince > consoleChangedAt ? stableSince : consoleChangedAt;
                        return ("booted", $"the screen stayed unchanged for {steady.TotalSeconds:0} s and shows no failure", since.TotalSeconds);
                    }

                    if ((screen.IsSingleColour || placeholder) && now - stableSince >= 3 * settle)
                    {
                        return (FailureSigns.BlankScreen, placeholder
                            ? $"the guest did not initialize the display in {(now - stableSince).TotalSeconds:0} s"
                            : $"the screen stayed a single colour for {(now - stableSince).TotalSeconds:0} s", now.TotalSeconds);
                    }
                }
            }

            if (now >= _settings.Timeout)
            {
                TakeScreen();
                return LastScreen is { IsSingleColour: true }
                    ? (FailureSigns.BlankScreen, $"the screen was still blank after the timeout ({_settings.Timeout.TotalSeconds:0} s)", now.TotalSeconds)
                    : (FailureSigns.Timeout, $"no verdict within {_settings.Timeout.TotalSeconds:0} s", now.TotalSeconds);
            }

            Thread.Sleep(Tick);
        }
    }

    /// <summary>The user's --expect on the console text; a match that runs past its timeout counts as no match.</summary>
    private static System.Text.RegularExpressions.Match? ExpectMatch(System.Text.RegularExpressions.Regex expect, string text)
    {
        try
        {
            return expect.Match(text);
        }
        catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            return null;
        }
    }

    private (string Verdict, string Detail, double Seconds)? FromConsoles(TimeSpan now)
    {
        if (_settings.Expect is { } expect && ExpectMatch(expect, _serial.Text) is { Success: true } m)
        {
            TakeScreen();
            string line = m.Value.Trim();
            return ("booted", $"--expect matched on the serial console: {(line.Length > 120 ? line[..120] : line)}", now.TotalSeconds);
        }

        var found = FailureSigns.Find(_serial.Text) is { } s ? (s.Failure, $"on the serial console: {s.Line}")
            : FailureSigns.Find(_firmwareLog.Text) is { } f ? (f.Failure, $"from the firmware: {f.Line}")
            : ((string, string)?)null;
        if (found is { } hit)
        {
            TakeScreen();
            return (hit.Item1, hit.Item2, now.TotalSeconds);
        }

        return null;
    }

    private string Status()
    {
        try
        {
            return _qmp!.Execute("query-status")?["status"]?.GetValue<string>() ?? "unknown";
        }
        catch (IOException)
        {
            return _qemu!.WaitForExit(2000) ? "exited" : "unknown";
        }
    }

    /// <summary>Takes a screendump into <see cref="LastScreen"/> (and the screen's text when in text mode); null if QEMU cannot.</summary>
    private ScreenImage? TakeScreen()
    {
        if (_qmp == null || _qemu == null || _qemu.HasExited)
        {
            return null;
        }

        string ppm = Path.Combine(_work.FullName, "screen.ppm");
        try
        {
            File.Delete(ppm);
            _qmp.Execute("screendump", new JsonObject { ["filename"] = ppm });
            var screen = ScreenImage.FromPpm(File.ReadAllBytes(ppm), "screendump");
            LastScreen = screen;
            LastScreenText = null;
            if (screen.LooksLikeTextMode)
            {
                string text = Path.Combine(_work.FullName, "vga.bin");
                File.Delete(text);
                _qmp.Execute("pmemsave", new JsonObject { ["val"] = VgaText.Address, ["size"] = VgaText.Size, ["filename"] = text });
                LastScreenText = VgaText.Decode(File.ReadAllBytes(text));
            }

            return screen;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            Log.Debug("boot-check: screendump failed: {Reason}", e.Message);
            return null;
        }
    }

    private void Stop()
    {
        var qemu = _qemu;
        if (qemu == null)
        {
            return;
        }

        _qemu = null;
        try
        {
            if (!qemu.HasExited)
            {
                try
                {
                    _qmp?.Execute("quit");
                }
                catch (IOException)
                {
                    // QEMU closes the socket as it quits.
                }

                if (!qemu.WaitForExit(5000))
                {
                    qemu.Kill();
                    qemu.WaitForExit(5000);
                }
            }
        }
        finally
        {
            _qmp?.Dispose();
            _agent?.Dispose();
            qemu.Dispose();
        }
    }

    private string QemuError(string fallback)
    {
        string err;
        lock (_stderr)
        {
            err = _stderr.ToString();
        }

        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.Contains("warning:", StringComparison.Ordinal)).ToList();
        string text = lines.Count > 0 ? string.Join(" / ", lines.TakeLast(3)) : fallback;
        return text.Length > 300 ? text[..300] : text;
    }

    private static (int ExitCode, string Output) RunTool(string program, string[] args)
    {
        var psi = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output + err.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (127, $"{program}: {e.Message} (package qemu-utils)");
        }
    }
}
