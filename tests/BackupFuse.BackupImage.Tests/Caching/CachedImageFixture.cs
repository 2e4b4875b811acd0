using BackupFuse.BackupImage.Writing;
using BackupFuse.Testing;

namespace BackupFuse.BackupImage.Tests.Caching;

/// <summary>One real image (made by BackupWriter from mixed data) shared by the cache tests of a class.</summary>
public sealed class CachedImageFixture : IDisposable
{
    private readonly TempDirectory _dir = new("bfcache-img");

    public CachedImageFixture()
    {
        Disk = _dir["disk.raw"];
        Image = _dir["full.bfi"];
        MixedDataGenerator.WriteFile(Disk, (40 << 20) + 4096 + 123, seed: 7, sparse: true);
        BackupWriter.Backup(Disk, Image, new BackupOptions { EntriesPerPage = 64 });
        ImageBytes = File.ReadAllBytes(Image);
    }

    /// <summary>The source disk.</summary>
    public string Disk { get; }

    /// <summary>The image file.</summary>
    public string Image { get; }

    /// <summary>The image's bytes (the oracle for uncached reads).</summary>
    public byte[] ImageBytes { get; }

    public void Dispose() => _dir.Dispose();
}
