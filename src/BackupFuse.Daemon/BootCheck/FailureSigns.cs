using System.Text.RegularExpressions;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - The failures a boot check names, recognised from text the guest or its firmware printed: the serial console,
//   the firmware's debug console (SeaBIOS prints its screen messages there too) and, on a text-mode screen, the
//   characters in video memory. Text, never pixels: a message is either there or not, nothing is guessed.
// - Blank screen and timeout are decided by the machine loop (they are not text); they are named here so every
//   failure has one spelling in the report.
// - The patterns are the messages of the firmware and boot loaders QEMU guests meet: SeaBIOS and OVMF (no bootable
//   device; OVMF with nothing to boot starts its built-in UEFI shell, which counts as that), the MBR boot code of
//   DOS/Windows, GRUB's rescue shell, and Linux's panic line.

/// <summary>The named boot failures and how each is recognised in console or screen text.</summary>
public static partial class FailureSigns
{
    /// <summary>The firmware found nothing to boot.</summary>
    public const string NoBootableDevice = "no bootable device";

    /// <summary>The kernel panicked.</summary>
    public const string KernelPanic = "kernel panic";

    /// <summary>GRUB could not find its files and fell into its rescue shell.</summary>
    public const string GrubRescue = "GRUB rescue";

    /// <summary>The screen stayed a single colour.</summary>
    public const string BlankScreen = "blank screen";

    /// <summary>No verdict before --timeout.</summary>
    public const string Timeout = "timeout";

    /// <summary>The guest powered itself off (or reset) before it was seen booted.</summary>
    public const string PoweredOff = "powered off before booting";

    /// <summary>QEMU itself failed.</summary>
    public const string QemuFailed = "qemu failed";

    /// <summary>The first failure named in <paramref name="text"/> and the line that shows it, or null.</summary>
    public static (string Failure, string Line)? Find(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var (failure, pattern) in Patterns)
        {
            var m = pattern.Match(text);
            if (m.Success)
            {
                return (failure, LineAt(text, m.Index));
            }
        }

        return null;
    }

    private static readonly (string Failure, Regex Pattern)[] Patterns =
    [
        (KernelPanic, KernelPanicRegex()),
        (GrubRescue, GrubRescueRegex()),
        (NoBootableDevice, NoBootableRegex()),
    ];

    private static string LineAt(string text, int index)
    {
        int start = text.LastIndexOf('\n', Math.Max(0, index - 1)) + 1;
        int end = text.IndexOf('\n', index);
        string line = (end < 0 ? text[start..] : text[start..end]).Trim();
        return line.Length > 200 ? line[..200] : line;
    }

    [GeneratedRegex(@"Kernel panic - not syncing|\bKernel panic\b|guest panicked", RegexOptions.IgnoreCase)]
    private static partial Regex KernelPanicRegex();

    [GeneratedRegex(@"grub rescue>|error: unknown filesystem\.\s*\r?\nEntering rescue mode", RegexOptions.IgnoreCase)]
    private static partial Regex GrubRescueRegex();

    [GeneratedRegex(@"No bootable device|No bootable option or device was found|Operating System not found|Missing operating system|No boot device available|BdsDxe: starting Boot\w+ ""EFI Internal Shell""|UEFI Interactive Shell", RegexOptions.IgnoreCase)]
    private static partial Regex NoBootableRegex();
}
