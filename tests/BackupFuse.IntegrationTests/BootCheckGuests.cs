using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// The guests of BootCheckTests, built once per class from scripts/guest's test guest: <see cref="GoodImage"/> (powers
/// off right after booting), <see cref="Plugin"/> over it whose changes add /etc/bf-hook.sh that keeps the guest up with
/// text on the VGA console (written through a real mount with debugfs), <see cref="PanicImage"/> (the hook crashes the
/// kernel) and <see cref="NoBootImage"/> (boot sector zeroed).
/// </summary>
public sealed class BootCheckGuests : IDisposable
{
    private const string StayUpHook =
        "t=/dev/tty1\n[ -c $t ] || t=/dev/tty0\nprintf '\\033[2J\\033[H' >$t\n" +
        "echo \"BackupFuse test guest $(uname -r)\" >$t\necho >$t\ncat /proc/version >$t\necho BFGUEST-CONSOLE-READY >$t\n" +
        "echo >$t\necho 'bfguest login: ' >$t\necho BFGUEST-STAYING-UP\nexec sleep 100000\n";

    private const string PanicHook = "echo BFGUEST-PANICKING\necho c >/proc/sysrq-trigger\nsleep 30\n";

    /// <summary>Builds the guests, or records why it cannot (<see cref="Missing"/>).</summary>
    public BootCheckGuests()
    {
        Missing = GuestBoot.Missing() ?? (ExternalTool.Exists("chromium") ? null : "chromium is missing (package chromium; scripts/install-deps.sh --test installs it)");
        if (Missing != null)
        {
            return;
        }

        Directory.CreateDirectory(Images);
        Directory.CreateDirectory(Vms);
        string good = Dir["good.raw"];
        GuestBoot.Script("guest/make-boot-disk.sh", [good, "96"], ("BF_CHECK_CONTENT", "boot-check"));
        Cli.Ok("backup", good, GoodImage);

        string panic = Dir["panic.raw"];
        ExternalTool.Check("cp", "--sparse=always", good, panic);
        WriteHook(panic, PanicHook);
        Cli.Ok("backup", panic, PanicImage);

        string noBoot = Dir["noboot.raw"];
        ExternalTool.Check("cp", "--sparse=always", good, noBoot);
        using (var f = new FileStream(noBoot, FileMode.Open, FileAccess.Write))
        {
            f.Write(new byte[512]);
        }

        Cli.Ok("backup", noBoot, NoBootImage);

        Cli.Ok("plugin", "create", GoodImage, Plugin);
        using (DaemonProcess.Start(Vms, Vms, "--images", Images))
        {
            WriteHook(Plugin, StayUpHook); // through the mount: lands in the plugin's changes
        }

        if (!File.Exists(ChangesFile))
        {
            throw new InvalidOperationException($"the hook written through the mount made no changes file ({ChangesFile})");
        }
    }

    /// <summary>Why the guests cannot be built or booted here, or null.</summary>
    public string? Missing { get; }

    /// <summary>Scratch space of the class.</summary>
    public TempDirectory Dir { get; } = new("bfbootcheck");

    /// <summary>The backups.</summary>
    public string Images => Dir["images"];

    /// <summary>The plugin directory (not mounted during the tests).</summary>
    public string Vms => Dir["vms"];

    /// <summary>The pristine guest (boots, prints BFGUEST-BOOTED, powers off).</summary>
    public string GoodImage => Path.Combine(Images, "guest.bfi");

    /// <summary>A guest whose init crashes the kernel.</summary>
    public string PanicImage => Path.Combine(Images, "panic.bfi");

    /// <summary>A guest whose boot sector is zeroed.</summary>
    public string NoBootImage => Path.Combine(Images, "noboot.bfi");

    /// <summary>A raw-format plugin over <see cref="GoodImage"/> with changes that keep the guest up.</summary>
    public string Plugin => Path.Combine(Vms, "guest.img");

    /// <summary>The plugin's changes file.</summary>
    public string ChangesFile => Path.Combine(Vms, ".backupfuse", "guest.img-changes.vhdx");

    /// <summary>Hashes of every backup, the plugin and everything in its .backupfuse directory.</summary>
    public string Fingerprint() =>
        GuestBoot.HashDir(Images) + "|" + GuestBoot.HashDir(Vms) + "|" + GuestBoot.HashDir(Path.Combine(Vms, ".backupfuse"));

    /// <summary>Removes the scratch space.</summary>
    public void Dispose() => Dir.Dispose();

    private void WriteHook(string disk, string script)
    {
        string hook = Dir["hook.sh"];
        File.WriteAllText(hook, script);
        ExternalTool.Check("debugfs", "-w", "-R", $"write {hook} /etc/bf-hook.sh", disk + "?offset=1048576");
        string back = ExternalTool.Check("debugfs", "-R", "cat /etc/bf-hook.sh", disk + "?offset=1048576").StdOut;
        if (back != script)
        {
            throw new InvalidOperationException($"{disk}: /etc/bf-hook.sh did not read back as written");
        }
    }
}
