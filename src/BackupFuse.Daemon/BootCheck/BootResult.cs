namespace BackupFuse.Daemon.BootCheck;

/// <summary>The verdict on one backup point.</summary>
public sealed record BootResult
{
    /// <summary>The name shown in the report (unique within the run).</summary>
    public required string Name { get; init; }

    /// <summary>The plugin or image the user named.</summary>
    public required string Input { get; init; }

    /// <summary>True when the point booted.</summary>
    public bool Booted { get; init; }

    /// <summary>"booted" or the named failure (FailureSigns), or "error" when it could not be booted at all.</summary>
    public required string Verdict { get; init; }

    /// <summary>What decided the verdict (the matched line, the signal), one line.</summary>
    public required string Detail { get; init; }

    /// <summary>Seconds from QEMU's start to the verdict's moment (booted: when it was first seen booted).</summary>
    public double? Seconds { get; init; }

    /// <summary>"bios" or "uefi", and why.</summary>
    public string? Firmware { get; init; }

    /// <summary>The accelerator QEMU ran with.</summary>
    public string? Accel { get; init; }

    /// <summary>Report-relative path of the last screen (PNG), when one was taken.</summary>
    public string? Screenshot { get; init; }

    /// <summary>Report-relative path of the thumbnail (PNG).</summary>
    public string? Thumbnail { get; init; }

    /// <summary>Report-relative path of the serial console log.</summary>
    public string? SerialLog { get; init; }

    /// <summary>Report-relative path of the firmware's debug console log.</summary>
    public string? FirmwareLog { get; init; }

    /// <summary>The last screen's text, when it was a text-mode screen.</summary>
    public string? ScreenText { get; init; }
}
