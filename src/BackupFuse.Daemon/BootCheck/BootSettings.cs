using System.Text.RegularExpressions;

namespace BackupFuse.Daemon.BootCheck;

/// <summary>How every machine of one boot-check run is set up and judged (the command's options).</summary>
public sealed record BootSettings
{
    /// <summary>Give up after this long without a verdict.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Guest memory in MiB.</summary>
    public int MemoryMiB { get; init; } = 1024;

    /// <summary>"kvm" or "tcg" (already resolved from auto).</summary>
    public string Accel { get; init; } = "tcg";

    /// <summary>The user's regex on the serial console; a match is a boot.</summary>
    public Regex? Expect { get; init; }

    /// <summary>Forced firmware, or null to choose from the disk.</summary>
    public Firmware? Firmware { get; init; }

    /// <summary>How the disk is attached: virtio, sata or ide.</summary>
    public string DiskBus { get; init; } = "sata";

    /// <summary>How long the screen (and the consoles) must stay unchanged to count as booted.</summary>
    public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Time between two screendumps.</summary>
    public TimeSpan ScreenInterval { get; init; } = TimeSpan.FromSeconds(2);
}
