namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - A block device is a volume when sysfs says so: /sys/class/block/<name>/partition exists for a partition, and
//   dm-* devices (LVM logical volumes, dm-crypt) are volumes too (a whole-disk dm-multipath device would be taken for
//   a volume as well: it then reads inside a synthesized table, which is still its exact bytes). A regular file is a disk unless the user says --volume: nothing in its bytes tells a file-system image
//   from a disk image reliably (a probe would, for known file systems, but an unknown one would silently flip).

/// <summary>Whether a backup source is a volume (a partition or a device-mapper device).</summary>
public static class VolumeDetection
{
    /// <summary>Why <paramref name="sourcePath"/> is a volume ("partition sdb1", "device-mapper dm-0"), or null.</summary>
    public static string? Detect(string sourcePath, string sysClassBlock = "/sys/class/block")
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        string real = Path.GetFullPath(sourcePath);
        try
        {
            real = File.ResolveLinkTarget(sourcePath, returnFinalTarget: true)?.FullName ?? real; // /dev/vg/lv -> /dev/dm-3
        }
        catch (IOException)
        {
            // Not there or not resolvable: the path as given decides.
        }

        if (!real.StartsWith("/dev/", StringComparison.Ordinal))
        {
            return null;
        }

        string name = Path.GetFileName(real);
        if (File.Exists(Path.Combine(sysClassBlock, name, "partition")))
        {
            return $"partition {name}";
        }

        return Directory.Exists(Path.Combine(sysClassBlock, name, "dm")) ? $"device-mapper {name}" : null;
    }
}
