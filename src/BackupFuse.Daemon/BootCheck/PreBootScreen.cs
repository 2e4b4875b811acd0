using System.Text.RegularExpressions;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - A screen that stops changing is a boot only once the operating system drew it. Under TCG a kernel may load for
//   many seconds (tens, on a busy host) behind an unchanged firmware or boot-loader screen, so a text-mode screen
//   whose every line is one of those pre-OS messages (SeaBIOS, syslinux, GRUB loading, the kernel's decompressor, a
//   "Booting from ..." line) is "still booting", however long it stays.
// - Only text-mode screens can be read (VgaText); a graphics screen that settles is taken as the OS's.

/// <summary>Recognises a text screen that only the firmware or the boot loader has written to.</summary>
public static partial class PreBootScreen
{
    /// <summary>True when every non-empty line of <paramref name="text"/> is a firmware or boot-loader message.</summary>
    public static bool IsPreBoot(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).All(l => PreBootLine().IsMatch(l));
    }

    [GeneratedRegex(@"^(SeaBIOS|iPXE|Booting from|Boot failed|Press (ESC|F12)|Machine UUID|SYSLINUX|ISOLINUX|EXTLINUX|PXELINUX|Loading|GRUB loading|Welcome to GRUB|Decompressing Linux|Parsing ELF|Booting the kernel|Probing EDD|early console|BdsDxe|Guest has not initialized the display)", RegexOptions.IgnoreCase)]
    private static partial Regex PreBootLine();
}
