using BackupFuse.BackupImage.Volumes;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>Volume detection from sysfs (a directory laid out like /sys/class/block).</summary>
public sealed class VolumeDetectionTests
{
    [Fact]
    public void PartitionsAndDeviceMapperDevicesAreVolumesFilesAndDisksAreNot()
    {
        using var sys = new TempDirectory("bfsys");
        Directory.CreateDirectory(sys["sdz9"]);
        File.WriteAllText(Path.Combine(sys["sdz9"], "partition"), "9\n");
        Directory.CreateDirectory(Path.Combine(sys["dm-7"], "dm"));
        Directory.CreateDirectory(sys["sdz"]);
        Assert.Equal("partition sdz9", VolumeDetection.Detect("/dev/sdz9", sys.Path));
        Assert.Equal("device-mapper dm-7", VolumeDetection.Detect("/dev/dm-7", sys.Path));
        Assert.Null(VolumeDetection.Detect("/dev/sdz", sys.Path));
        Assert.Null(VolumeDetection.Detect(sys["sdz9"], sys.Path)); // not a device path
    }
}
