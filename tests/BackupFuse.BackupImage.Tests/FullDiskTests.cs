using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests;

/// <summary>A real full file system (a 2 MiB tmpfs; the tests run as root, as CI does).</summary>
public sealed class FullDiskTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfi-full");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void FullDestinationDiskGivesAClearErrorAndLeavesNoValidImage()
    {
        string mountPoint = Directory.CreateDirectory(_dir["small"]).FullName;
        ExternalTool.Check("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint);
        try
        {
            string disk = _dir["random.raw"];
            var bytes = new byte[8 << 20];
            new Random(51).NextBytes(bytes);
            File.WriteAllBytes(disk, bytes);
            string dest = Path.Combine(mountPoint, "img.bfi");

            var e = Assert.ThrowsAny<IOException>(() => BackupWriter.Backup(disk, dest, new BackupOptions()));
            Assert.Equal($"no space left on device while writing {dest}", e.Message);
            foreach (var file in Directory.GetFiles(mountPoint))
            {
                Assert.ThrowsAny<Exception>(() => BackupImageFile.Open(file).Dispose());
            }

            Assert.Empty(Directory.GetFiles(mountPoint));
        }
        finally
        {
            ExternalTool.Run("umount", [mountPoint]);
        }
    }
}
