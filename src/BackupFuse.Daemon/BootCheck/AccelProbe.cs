using System.Diagnostics;
using Serilog;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - `--accel auto` must never pick a KVM that does not work: on nested hosts /dev/kvm opens and KVM_CREATE_VM works,
//   and even SeaBIOS without a graphics card gets through, yet real guests hang ("KVM internal error", or silence).
//   So auto makes a probe boot that goes as far as a real guest: QEMU with KVM, the graphics card boot checks use,
//   and the host's own kernel (/boot/vmlinuz-*, no root file system) on the serial console: a working KVM gets it to
//   its "Kernel panic - not syncing" (no root) in a second or two. Without a kernel in /boot the probe boots
//   SeaBIOS with the same graphics card to its "No bootable device". A KVM error, an early exit, or neither message
//   within ProbeTime means TCG, said in one log line. Without a usable /dev/kvm there is no probe.
// - Resolved once per run (the caller keeps the answer); the probe's files live in a private temporary directory.

/// <summary>Resolves --accel auto|kvm|tcg to the accelerator QEMU gets.</summary>
public static class AccelProbe
{
    /// <summary>How long the probe boot may take before KVM counts as not working.</summary>
    public static readonly TimeSpan ProbeTime = TimeSpan.FromSeconds(8);

    /// <summary>"kvm" or "tcg" for <paramref name="requested"/> (auto, kvm or tcg).</summary>
    public static string Resolve(string requested)
    {
        if (requested != "auto")
        {
            return requested;
        }

        string? why = KvmProblem();
        if (why == null)
        {
            Log.Information("boot-check: KVM works here (probe boot passed); using KVM");
            return "kvm";
        }

        Log.Information("boot-check: KVM is not usable here ({Reason}); using TCG (software emulation, slower)", why);
        return "tcg";
    }

    /// <summary>Why KVM cannot run guests here, or null when a probe boot under KVM reached the firmware's end.</summary>
    public static string? KvmProblem()
    {
        try
        {
            using var kvm = File.Open("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"/dev/kvm: {e.Message}";
        }

        var dir = Directory.CreateTempSubdirectory("backupfuse-kvm-probe-");
        try
        {
            string log = Path.Combine(dir.FullName, "console.log");
            string? kernel = Directory.Exists("/boot") ? Directory.EnumerateFiles("/boot", "vmlinuz-*").Order(StringComparer.Ordinal).LastOrDefault() : null;
            string success = kernel != null ? "Kernel panic" : "No bootable device";
            var psi = new ProcessStartInfo("qemu-system-x86_64")
            {
                UseShellExecute = false,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                RedirectStandardInput = true,
            };
            var args = new List<string> { "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std", "-m", "256", "-no-reboot" };
            args.AddRange(kernel != null
                ? ["-kernel", kernel, "-append", "console=ttyS0 panic=0 root=/dev/nonexistent", "-chardev", $"file,id=con,path={log}", "-serial", "chardev:con"]
                : ["-chardev", $"file,id=con,path={log}", "-device", "isa-debugcon,iobase=0x402,chardev=con"]);
            foreach (string a in args)
            {
                psi.ArgumentList.Add(a);
            }

            using var qemu = Process.Start(psi) ?? throw new InvalidOperationException("qemu-system-x86_64 did not start");
            var stderr = qemu.StandardError.ReadToEndAsync();
            _ = qemu.StandardOutput.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            try
            {
                while (clock.Elapsed < ProbeTime)
                {
                    if (File.Exists(log) && File.ReadAllText(log).Contains(success, StringComparison.Ordinal))
                    {
                        return null;
                    }

                    if (qemu.WaitForExit(200))
                    {
                        string err = stderr.Result.Trim();
                        return $"probe boot ended early: {(err.Length > 200 ? err[..200] : err)}";
                    }
                }

                return $"a probe boot under KVM did not get to '{success}' within {ProbeTime.TotalSeconds:0} s";
            }
            finally
            {
                if (!qemu.HasExited)
                {
                    qemu.Kill();
                    qemu.WaitForExit(5000);
                }
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"qemu-system-x86_64: {e.Message}";
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
