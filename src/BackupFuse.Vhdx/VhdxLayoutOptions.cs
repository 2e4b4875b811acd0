namespace BackupFuse.Vhdx;

/// <summary>Choices for a synthesized VHDX. The defaults are what QEMU, libvhdi and 7-Zip all read.</summary>
public sealed record VhdxLayoutOptions
{
    /// <summary>The default options.</summary>
    public static VhdxLayoutOptions Default { get; } = new();

    /// <summary>Payload block size: a power of two from 1 MiB to 256 MiB. Default 32 MiB (see VhdxLayout design notes).</summary>
    public int BlockSize { get; init; } = 32 * 1024 * 1024;

    /// <summary>Logical sector size, 512 or 4096. QEMU 7.2 opens only 512.</summary>
    public int LogicalSectorSize { get; init; } = 512;

    /// <summary>Physical sector size reported to the guest, 512 or 4096.</summary>
    public int PhysicalSectorSize { get; init; } = 4096;

    /// <summary>
    /// The virtual size is the disk length rounded up to this power of two (at least the logical sector size).
    /// Default 512: the exact length in whole sectors. 1024 or more works around 7-Zip (up to 26.02 at least), which
    /// tests <c>VirtualDiskSize &amp; (1 &lt;&lt; log2(sector))</c> instead of a mask and so refuses every disk with an odd
    /// number of 512-byte sectors (qemu-img's own files included). The padding reads as zeros.
    /// </summary>
    public int VirtualSizeAlignment { get; init; } = 512;

    /// <summary>Creator string in the file type identifier (diagnostics only; keep it constant for stable bytes).</summary>
    public string Creator { get; init; } = "BackupFuse";
}
