using System.Text;
using BackupFuse.BackupImage.Files;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Volumes;
using BackupFuse.Core;
using BackupFuse.Core.FileSystems;
using BackupFuse.Core.Partitions;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - What a plugin reads as, before any VHDX or changes: the disk of one chain as it is (a disk image), or a disk
//   synthesized around volume images (PartitionedDiskSource): one chain per volume, each its own full + incrementals,
//   partition i = volume i at the next 1 MiB boundary. A single image that holds a volume is a one-partition disk.
// - Deterministic: the VHDX identity, the GPT disk GUID and every partition GUID are derived (SHA-256, RFC 9562
//   version 8 layout) from the image identities in order, the table kind and the type override, so the same plugin
//   reads as the same bytes on every run and a changes file stays bound to it. A single disk image keeps its own
//   identity, exactly as before volumes existed.
// - A file-level image (its files, not blocks) is a volume too: its tree laid out as a synthesized exFAT (default) or
//   FAT32 file system (FileLevelVolume, the plugin's `filesystem`), built once when the point is opened and shared by
//   every source made over it. Its partition is Microsoft basic data. The file system joins the identity seed only
//   when a file-level image is present, so the identities of block plugins are what they always were.
// - Owns its chains and file-level volumes. CreateSource opens new sources over them (the caller owns those); Shape
//   needs no open source (for a file-level image it parses the catalog to know the volume's size).

/// <summary>The opened chains of a backup point and the disk they read as.</summary>
public sealed class BackupPointDisk : IDisposable
{
    private readonly BackupChain[] _chains;
    private readonly FileLevelVolume?[] _fileVolumes;

    private BackupPointDisk(BackupChain[] chains, FileLevelVolume?[] fileVolumes, DiskShape shape)
    {
        _chains = chains;
        _fileVolumes = fileVolumes;
        Shape = shape;
    }

    /// <summary>The chains, one per volume (one for a disk image); owned.</summary>
    public IReadOnlyList<BackupChain> Chains => _chains;

    /// <summary>The first chain (the plugin's <c>image</c>).</summary>
    public BackupChain Primary => _chains[0];

    /// <summary>The disk's identity, size and partition layout.</summary>
    public DiskShape Shape { get; }

    /// <summary>Identity of the disk (the VHDX's).</summary>
    public Guid Identity => Shape.Identity;

    /// <summary>Size of the disk.</summary>
    public long DiskSize => Shape.DiskSize;

    /// <summary>The synthesized file system of each file-level image (null for block images), in partition order.</summary>
    public IReadOnlyList<FileLevelVolume?> FileVolumes => _fileVolumes;

    /// <summary>
    /// The disk of <paramref name="chains"/> (taken over, also on failure) as <paramref name="plugin"/> (null: defaults)
    /// arranges it.
    /// </summary>
    /// <exception cref="InvalidDataException">Several images of which one is a whole disk, or a table that cannot hold them.</exception>
    public static BackupPointDisk Create(IReadOnlyList<BackupChain> chains, PluginFile? plugin)
    {
        ArgumentNullException.ThrowIfNull(chains);
        FileLevelVolume?[] volumes = [];
        try
        {
            volumes = OpenFileVolumes(chains, plugin);
            return new BackupPointDisk([.. chains], volumes, ShapeOf(chains, plugin, volumes));
        }
        catch
        {
            foreach (var v in volumes)
            {
                v?.Dispose();
            }

            foreach (var c in chains)
            {
                c.Dispose();
            }

            throw;
        }
    }

    /// <summary>Identity, size and partition layout of the disk <paramref name="chains"/> read as (no source is kept open).</summary>
    /// <exception cref="InvalidDataException">Several images of which one is a whole disk, or a table that cannot hold them.</exception>
    /// <exception cref="IOException">A file-level image's file system cannot hold its tree (FAT32: a file of 4 GiB or more).</exception>
    public static DiskShape ShapeOf(IReadOnlyList<BackupChain> chains, PluginFile? plugin) => ShapeOf(chains, plugin, out _);

    /// <summary>
    /// <see cref="ShapeOf(IReadOnlyList{BackupChain}, PluginFile?)"/>, and how many names of file-level images the
    /// synthesized file systems store under another name or leave out.
    /// </summary>
    /// <exception cref="InvalidDataException">Several images of which one is a whole disk, or a table that cannot hold them.</exception>
    /// <exception cref="IOException">A file-level image's file system cannot hold its tree (FAT32: a file of 4 GiB or more).</exception>
    public static DiskShape ShapeOf(IReadOnlyList<BackupChain> chains, PluginFile? plugin, out int mappedNames)
    {
        ArgumentNullException.ThrowIfNull(chains);
        var volumes = OpenFileVolumes(chains, plugin);
        try
        {
            mappedNames = volumes.Sum(v => v?.Mappings.Count ?? 0);
            return ShapeOf(chains, plugin, volumes);
        }
        finally
        {
            foreach (var v in volumes)
            {
                v?.Dispose();
            }
        }
    }

    private static DiskShape ShapeOf(IReadOnlyList<BackupChain> chains, PluginFile? plugin, FileLevelVolume?[] fileVolumes)
    {
        if (chains.Count == 0)
        {
            throw new InvalidDataException("a backup point needs at least one image");
        }

        var first = chains[0].Top;
        bool anyFiles = fileVolumes.Any(v => v != null);
        if (plugin?.FileSystem != null && !anyFiles)
        {
            throw new InvalidDataException($"{first.Path} holds blocks, not files: 'filesystem' applies to file-level images");
        }

        if (chains.Count == 1 && !first.Header.IsVolume && !anyFiles)
        {
            return new DiskShape(first.Id, chains[0].DiskSize, null);
        }

        if (chains.Select((c, i) => (c, i)).FirstOrDefault(x => !x.c.Top.Header.IsVolume && fileVolumes[x.i] == null).c is { } disk)
        {
            throw new InvalidDataException($"{disk.Top.Path} holds a whole disk, not a volume: only volume images are assembled into one disk");
        }

        var kind = plugin?.PartitionTable ?? PartitionTableKind.Gpt;
        string seed = Seed(chains, plugin, anyFiles);
        var specs = new List<PartitionSpec>();
        for (int i = 0; i < chains.Count; i++)
        {
            if (fileVolumes[i] is { } files)
            {
                string name = files.Kind == SynthesizedFileSystemKind.Fat32 ? "FAT32" : "exFAT";
                specs.Add(new PartitionSpec(files.Volume.Length, plugin?.PartitionType ?? PartitionTypes.MicrosoftBasicData, Derive($"partition {i}|{seed}"),
                    files.Kind == SynthesizedFileSystemKind.Fat32 ? PartitionTypes.MbrFat32Lba : PartitionTypes.MbrNtfs, $"{name} files {i + 1}"));
                continue;
            }

            var fs = chains[i].Top.Header.FileSystem;
            var type = plugin?.PartitionType ?? TypeFor(fs);
            specs.Add(new PartitionSpec(chains[i].DiskSize, type, Derive($"partition {i}|{seed}"),
                plugin?.PartitionType is { } t ? PartitionTypes.MbrTypeFor(t) : MbrTypeFor(fs), $"{FileSystemProbe.Describe(fs)} volume {i + 1}"));
        }

        var layout = PartitionedDiskLayout.Create(specs, Derive($"disk|{seed}"), kind);
        return new DiskShape(Derive($"vhdx|{seed}"), layout.Length, layout);
    }

    /// <summary>The seed every derived identity of the disk comes from.</summary>
    private static string Seed(IReadOnlyList<BackupChain> chains, PluginFile? plugin, bool anyFiles)
    {
        var kind = plugin?.PartitionTable ?? PartitionTableKind.Gpt;
        string seed = string.Join(",", chains.Select(c => c.Top.Id.ToString("D"))) + $"|{kind}|{plugin?.PartitionType}";
        return anyFiles ? seed + $"|files {plugin?.FileSystem ?? SynthesizedFileSystemKind.ExFat}" : seed;
    }

    /// <summary>The synthesized file system of each file-level chain (null for the others); the caller disposes them.</summary>
    private static FileLevelVolume?[] OpenFileVolumes(IReadOnlyList<BackupChain> chains, PluginFile? plugin)
    {
        var volumes = new FileLevelVolume?[chains.Count];
        if (!chains.Any(c => FileImageFields.IsFileImage(c.Top.Header)))
        {
            return volumes;
        }

        try
        {
            string seed = Seed(chains, plugin, anyFiles: true);
            var fileSystem = plugin?.FileSystem ?? SynthesizedFileSystemKind.ExFat;
            long offset = PartitionedDiskLayout.FirstPartitionOffset;
            for (int i = 0; i < chains.Count; i++)
            {
                if (FileImageFields.IsFileImage(chains[i].Top.Header))
                {
                    volumes[i] = FileLevelVolume.Open(chains[i], fileSystem, Derive($"filesystem {i}|{seed}"), offset);
                }

                long length = volumes[i]?.Volume.Length ?? chains[i].DiskSize;
                offset = PartitionedDiskLayout.NextPartitionOffset(offset, length);
            }

            return volumes;
        }
        catch
        {
            foreach (var v in volumes)
            {
                v?.Dispose();
            }

            throw;
        }
    }

    /// <summary>A new source reading the disk (the caller owns it).</summary>
    public IBlockSource CreateSource()
    {
        if (Shape.Partitions == null)
        {
            return Primary.CreateSource();
        }

        var volumes = new List<IBlockSource>();
        try
        {
            for (int i = 0; i < _chains.Length; i++)
            {
                volumes.Add(_fileVolumes[i]?.CreateSource() ?? _chains[i].CreateSource());
            }

            return new PartitionedDiskSource(Shape.Partitions, volumes);
        }
        catch
        {
            foreach (var v in volumes)
            {
                v.Dispose();
            }

            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var v in _fileVolumes)
        {
            v?.Dispose();
        }

        foreach (var c in _chains)
        {
            c.Dispose();
        }
    }

    /// <summary>The GPT type of a file system: Microsoft basic data for NTFS, FAT and exFAT, Linux filesystem data otherwise.</summary>
    public static Guid TypeFor(FileSystemKind fs) =>
        fs is FileSystemKind.Ntfs or FileSystemKind.Fat or FileSystemKind.ExFat ? PartitionTypes.MicrosoftBasicData : PartitionTypes.LinuxFileSystem;

    private static byte MbrTypeFor(FileSystemKind fs) => fs switch
    {
        FileSystemKind.Ntfs or FileSystemKind.ExFat => PartitionTypes.MbrNtfs,
        FileSystemKind.Fat => PartitionTypes.MbrFat32Lba,
        _ => PartitionTypes.MbrLinux,
    };

    /// <summary>A version-8 GUID from the SHA-256 of <paramref name="seed"/>.</summary>
    private static Guid Derive(string seed)
    {
        byte[] hash = IdentityHash.HashData(Encoding.UTF8.GetBytes("backupfuse volume disk|" + seed));
        var bytes = hash.AsSpan(0, 16);
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x80); // version 8 (Guid's mixed-endian layout keeps the version in byte 7)
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(bytes);
    }
}
