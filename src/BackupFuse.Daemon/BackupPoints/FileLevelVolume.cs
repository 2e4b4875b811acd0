using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Core;
using BackupFuse.Core.FileSystems;
using BackupFuse.Core.FileSystems.ExFat;
using BackupFuse.Core.FileSystems.Fat32;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The volume a file-level backup point reads as: the point's tree (FileImageTree over the chain) laid out as a
//   synthesized exFAT or FAT32 file system. Built once per opened backup point and shared by every source made over
//   it (the volume is read-only and thread-safe); disposed with the point.
// - Deterministic: the file system's serial comes from the seed the disk derives from the image identities, so the
//   same point gives the same bytes on every run (a changes file stays bound to them).
// - What the file system cannot hold (renamed or left-out names) is in Mappings; FAT32's refusal of files of 4 GiB and
//   more is an IOException naming them, raised when the point is opened (plugin create reports it).

/// <summary>A file-level backup point as a synthesized exFAT or FAT32 volume.</summary>
public sealed class FileLevelVolume : IDisposable
{
    private FileLevelVolume(SynthesizedFileSystemKind kind, BlockSource volume, IReadOnlyList<FileNameMapping> mappings)
    {
        Kind = kind;
        Volume = volume;
        Mappings = mappings;
    }

    /// <summary>The file system.</summary>
    public SynthesizedFileSystemKind Kind { get; }

    /// <summary>The volume (owned; share it through <see cref="CreateSource"/>).</summary>
    public BlockSource Volume { get; }

    /// <summary>Entries stored under another name, or left out, and why.</summary>
    public IReadOnlyList<FileNameMapping> Mappings { get; }

    /// <summary>Lays out the tree of <paramref name="chain"/>'s top image (the chain stays the caller's and must outlive this).</summary>
    /// <exception cref="InvalidDataException">The image is not a file-level image, or its catalog is damaged.</exception>
    /// <exception cref="IOException">FAT32 cannot hold the tree (a file of 4 GiB or more, a volume over 2 TiB).</exception>
    public static FileLevelVolume Open(BackupChain chain, SynthesizedFileSystemKind kind, Guid serialSeed, long partitionOffset)
    {
        ArgumentNullException.ThrowIfNull(chain);
        IFileTree tree = FileImageTree.Open(chain, keepHashes: false); // a mount never compares content hashes
        try
        {
            if (kind == SynthesizedFileSystemKind.Fat32)
            {
                var fat = new Fat32Volume(tree, new Fat32VolumeOptions
                {
                    VolumeLabel = Label,
                    Seed = serialSeed.ToString("D"),
                    HiddenSectors = (uint)(partitionOffset / 512),
                }, ownsTree: true);
                return new FileLevelVolume(kind, fat, fat.Mappings);
            }

            var exfat = new ExFatVolume(tree, new ExFatOptions { VolumeLabel = Label, SerialSeed = serialSeed }, ownsTree: true);
            return new FileLevelVolume(kind, exfat, exfat.Mappings);
        }
        catch
        {
            tree.Dispose();
            throw;
        }
    }

    /// <summary>A source reading the shared volume; disposing it leaves the volume open.</summary>
    public IBlockSource CreateSource() => new Borrowed(Volume);

    /// <inheritdoc/>
    public void Dispose() => Volume.Dispose();

    /// <summary>
    /// The volume label: fixed, never from the image's path. A point's bytes must not change when its image is renamed
    /// or found by identity elsewhere (a changes file is bound to them, and FAT32 keeps the label in the boot sector).
    /// </summary>
    private const string Label = "BACKUPFUSE";

    private sealed class Borrowed(IBlockSource volume) : BlockFilter(volume)
    {
        protected override void Dispose(bool disposing)
        {
            // The volume belongs to the FileLevelVolume.
        }
    }
}
