namespace BackupFuse.Vhdx.Differencing;

/// <summary>
/// What a differencing child copies from and records about its parent: the virtual-disk metadata items (size, disk
/// id, sector sizes), the parent's DataWriteGuid (parent_linkage) and where to find it (relative_path, and an
/// optional absolute_win32_path, which must start with \\?\ and whose last component libvhdi looks for next to the child).
/// </summary>
public sealed record DifferencingParent(
    long VirtualSize,
    int LogicalSectorSize,
    int PhysicalSectorSize,
    Guid VirtualDiskId,
    Guid DataWriteGuid,
    string RelativePath)
{
    /// <summary>
    /// absolute_win32_path value (e.g. <c>\\?\C:\vms\.backupfuse\web01.base.vhdx</c>); null writes <c>\\?\C:\</c> + the file
    /// name of <see cref="RelativePath"/>, which is what libvhdi needs (it uses only the last component, next to the child).
    /// </summary>
    public string? AbsoluteWin32Path { get; init; }

    /// <summary>The parent description of a synthesized (pristine, never written) VHDX with the given layout.</summary>
    public static DifferencingParent FromLayout(VhdxLayout layout, string relativePath)
    {
        ArgumentNullException.ThrowIfNull(layout);
        return new DifferencingParent(layout.VirtualDiskSize, layout.Options.LogicalSectorSize, layout.Options.PhysicalSectorSize,
            layout.VirtualDiskId, layout.DataWriteGuid, relativePath);
    }
}
