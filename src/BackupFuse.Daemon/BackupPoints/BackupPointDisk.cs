using System.Security.Cryptography;
using System.Text;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Volumes;
using BackupFuse.Core;
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
// - Owns its chains. CreateSource opens new sources over them (the caller owns those); Shape needs no open source.

/// <summary>The opened chains of a backup point and the disk they read as.</summary>
public sealed class BackupPointDisk : IDisposable
{
    private readonly BackupChain[] _chains;

    private BackupPointDisk(BackupChain[] chains, DiskShape shape)
    {
        _chains = chains;
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

    /// <summary>
    /// The disk of <paramref name="chains"/> (taken over, also on failure) as <paramref name="plugin"/> (null: defaults)
    /// arranges it.
    /// </summary>
    /// <exception cref="InvalidDataException">Several images of which one is a whole disk, or a table that cannot hold them.</exception>
    public static BackupPointDisk Create(IReadOnlyList<BackupChain> chains, PluginFile? plugin)
    {
        ArgumentNullException.ThrowIfNull(chains);
        try
        {
            return new BackupPointDisk([.. chains], ShapeOf(chains, plugin));
        }
        catch
        {
            foreach (var c in chains)
            {
                c.Dispose();
            }

            throw;
        }
    }

    /// <summary>Identity, size and partition layout of the disk <paramref name="chains"/> read as (nothing is opened).</summary>
    /// <exception cref="InvalidDataException">Several images of which one is a whole disk, or a table that cannot hold them.</exception>
    public static DiskShape ShapeOf(IReadOnlyList<BackupChain> chains, PluginFile? plugin)
    {
        ArgumentNullException.ThrowIfNull(chains);
        if (chains.Count == 0)
        {
            throw new InvalidDataException("a backup point needs at least one image");
        }

        var first = chains[0].Top;
        if (plugin?.FileSystem != null)
        {
            throw new InvalidDataException($"{first.Path} holds blocks, not files: 'filesystem' applies to file-level images");
        }

        if (chains.Count == 1 && !first.Header.IsVolume)
        {
            return new DiskShape(first.Id, chains[0].DiskSize, null);
        }

        if (chains.FirstOrDefault(c => !c.Top.Header.IsVolume) is { } disk)
        {
            throw new InvalidDataException($"{disk.Top.Path} holds a whole disk, not a volume: only volume images are assembled into one disk");
        }

        var kind = plugin?.PartitionTable ?? PartitionTableKind.Gpt;
        var ids = chains.Select(c => c.Top.Id).ToArray();
        string seed = string.Join(",", ids.Select(i => i.ToString("D"))) + $"|{kind}|{plugin?.PartitionType}";
        var specs = new List<PartitionSpec>();
        for (int i = 0; i < chains.Count; i++)
        {
            var fs = chains[i].Top.Header.FileSystem;
            var type = plugin?.PartitionType ?? TypeFor(fs);
            specs.Add(new PartitionSpec(chains[i].DiskSize, type, Derive($"partition {i}|{seed}"),
                plugin?.PartitionType is { } t ? PartitionTypes.MbrTypeFor(t) : MbrTypeFor(fs), $"{FileSystemProbe.Describe(fs)} volume {i + 1}"));
        }

        var layout = PartitionedDiskLayout.Create(specs, Derive($"disk|{seed}"), kind);
        return new DiskShape(Derive($"vhdx|{seed}"), layout.Length, layout);
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
            foreach (var c in _chains)
            {
                volumes.Add(c.CreateSource());
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
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes("backupfuse volume disk|" + seed));
        var bytes = hash.AsSpan(0, 16);
        bytes[7] = (byte)((bytes[7] & 0x0F) | 0x80); // version 8 (Guid's mixed-endian layout keeps the version in byte 7)
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(bytes);
    }
}
