using BackupFuse.Core.FileSystems.ExFat;
using BackupFuse.Core.FileSystems.Fat32;
using BackupFuse.Core.FileTrees;
using BackupFuse.Testing;

namespace BackupFuse.Core.Tests;

// The synthesized volumes are part of the on-disk contract: a changes file written over a plugin holds guest writes
// against exactly these bytes, so the same tree must give the same volume on every build, runtime and host. These
// tests pin the bytes of one small tree (names chosen to exercise case folding, mapping and short names) and the
// frozen upper-case data they depend on. A change that moves any byte fails here; if the change is deliberate it
// needs a new plugin format version, not a new constant.
public sealed class FrozenLayoutTests
{
    [Fact]
    public void TheUpperCaseDataIsFrozen()
    {
        ulong fnv = 1469598103934665603UL;
        for (int c = 0; c < 65536; c++)
        {
            fnv ^= FrozenUpperCase.ToUpper((char)c);
            fnv *= 1099511628211UL;
        }

        Assert.Equal(0xEAC96EF2BE5CC03AUL, fnv);
        Assert.Equal("ABC ÀÉ Σ Σ ǄǄ ß Ａ", FrozenUpperCase.ToUpper("abc àé ς σ ǆǅ ß ａ"));
        Assert.Equal('\uD83D', FrozenUpperCase.ToUpper('\uD83D')); // surrogates map to themselves
        Assert.Equal("Ǆ.TXT", FatLongNames.Fold("ǆ.txt"));
    }

    [Fact]
    public void TheExFatVolumeOfAFixedTree_HasFixedBytes()
    {
        using var volume = new ExFatVolume(Tree(), new ExFatOptions { VolumeLabel = "FROZEN", SerialSeed = Guid.Parse("2c8f4f0e-5b1d-4e8a-9a3c-7d1e6f2b4a90"), FreeBytes = 1 << 20, ClusterSize = 4096 });
        Assert.Equal("3227648:2f0149d1d0ea7da22fec601a42d0952356e99988cf7236b5340628512ef2c907", $"{volume.Length}:{BlockSourceHash.Sha256(volume).ToLowerInvariant()}");
    }

    [Fact]
    public void TheFat32VolumeOfAFixedTree_HasFixedBytes()
    {
        using var volume = new Fat32Volume(Tree(), new Fat32VolumeOptions { Seed = "frozen", FreeSpaceHeadroom = 0, ClusterSize = 512 });
        Assert.Equal("34098688:8cc90154c41cb20016fe86dda1c4a2525448012635ead668c8fd8a1c032bb610", $"{volume.Length}:{BlockSourceHash.Sha256(volume).ToLowerInvariant()}");
    }

    private static IFileTree Tree()
    {
        var b = new FileTreeBuilder();
        const long Mtime = 1_700_000_000_123_456_789L;
        void File(string path, int size)
        {
            byte[] data = new byte[size];
            for (int i = 0; i < size; i++)
            {
                data[i] = (byte)((i * 31) + path.Length);
            }

            b.Add(path, FileTreeEntryKind.File, size, Mtime, Mtime + 1, 0x81A4, content: (o, buf) => data.AsSpan((int)o, buf.Length).CopyTo(buf));
        }

        b.Add("Documents", FileTreeEntryKind.Directory, 0, Mtime, Mtime, 0x41ED);
        File("Documents/ǆungla.txt", 5000);
        File("Documents/ǅUNGLA.txt", 10); // a case collision only under the frozen mapping's title-case rule
        File("Documents/σ.md", 1);
        File("Documents/Σ.md", 2);
        File("Documents/ς.md", 3);
        File("Documents/Straße.txt", 700);
        File("Documents/STRASSE.txt", 701); // no collision: ß is not folded to SS
        File("Documents/a:b?.txt", 9);
        File("Documents/trailing.", 4);
        File("Documents/" + new string('l', 300) + ".dat", 12);
        File("readme.txt", 4096);
        File("Long File Name With Spaces.jpeg", 9000);
        b.Add("Documents/empty", FileTreeEntryKind.Directory, 0, Mtime, Mtime, 0x41ED);
        b.Add("link", FileTreeEntryKind.Symlink, 0, Mtime, Mtime, 0xA1FF, "readme.txt");
        return b.Build();
    }
}
