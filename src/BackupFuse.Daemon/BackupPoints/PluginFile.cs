using System.Globalization;
using System.Text;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - A plugin file is a small, human-readable text file named *.vhdx that points at one backup point (an image
//   in a chain). Through the mount it reads as the complete VHDX of that point; outside the mount it is what it
//   is: a few lines of text that a person can read and a script can write.
// - Format (version 1), UTF-8, LF or CRLF line ends:
//       backupfuse-plugin 1                      <- magic + format version, always the first line
//       # comment lines and blank lines are ignored
//       image = /backups/web01-1122.bfi          <- absolute path or remote URL (s3://, https://) of the image (required)
//       image-id = 0f9c3f0e-...                  <- identity of that image (required; checked at open)
//       view = pristine                          <- optional: always the backup as it was, read-only, never with
//                                                   changes (the daemon writes such a pointer as the parent that a
//                                                   differencing file's relative_path names)
//   Unknown keys are an error in version 1 (a typo must not be ignored silently). A later version adds keys and
//   raises the number; a reader refuses a version it does not know, with a message naming it.
// - Version 2 (volumes, written only when one of its additions is used, so every other plugin stays version 1):
//       image = /backups/sda1.bfi                <- the image/image-id pair may repeat: each pair is one volume,
//       image-id = ...                              assembled in order into one disk (partition 1, 2, ...)
//       image = /backups/sda2.bfi
//       image-id = ...
//       partition-table = gpt | mbr              <- optional, default gpt (for volume images)
//       partition-type = <guid>                  <- optional: GPT type of every partition (default from the file system)
//       filesystem = exfat | fat32               <- optional, default exfat: the file system a file-level image is
//                                                   presented in (synthesized); on a block image it is an error
//   Each image-id follows its image line. A single image that holds a volume needs none of this: version 1 names it.
// - Detection is by the first line only (Sniff), so a real VHDX ("vhdxfile" magic) or any other *.vhdx passes
//   through the mount untouched. A file that starts with the magic but does not parse is a damaged plugin: its
//   own open fails with a clear error; nothing else is affected.
// - Size cap 64 KiB: a plugin is a pointer, never data.

/// <summary>A plugin file: a small pointer that names a backup point.</summary>
public sealed record PluginFile(int FormatVersion, string ImagePath, Guid ImageId, bool Pristine = false)
{
    /// <summary>The format version that can name several volumes, a partition table and a partition type.</summary>
    public const int VolumesVersion = 2;

    /// <summary>Further volume images after the first (<see cref="ImagePath"/>), in partition order (format version 2).</summary>
    public IReadOnlyList<PluginImage> MoreImages { get; init; } = [];

    /// <summary>The partition table of a volume disk; null for the default (GPT).</summary>
    public BackupFuse.Core.Partitions.PartitionTableKind? PartitionTable { get; init; }

    /// <summary>GPT partition type of every partition; null to derive it from the file system.</summary>
    public Guid? PartitionType { get; init; }

    /// <summary>The file system a file-level image is presented in; null for the default (exFAT).</summary>
    public BackupFuse.Core.FileSystems.SynthesizedFileSystemKind? FileSystem { get; init; }

    /// <summary>Every image the plugin names, in order (the first is <see cref="ImagePath"/>).</summary>
    public IReadOnlyList<PluginImage> Images => [new PluginImage(ImagePath, ImageId), .. MoreImages];

    /// <summary>Value equality, with <see cref="MoreImages"/> compared by content (a record would compare the list by reference).</summary>
    public bool Equals(PluginFile? other) =>
        other is not null && FormatVersion == other.FormatVersion && ImagePath == other.ImagePath && ImageId == other.ImageId &&
        Pristine == other.Pristine && MoreImages.SequenceEqual(other.MoreImages) && PartitionTable == other.PartitionTable && PartitionType == other.PartitionType &&
        FileSystem == other.FileSystem;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(FormatVersion, ImagePath, ImageId, Pristine, MoreImages.Count, PartitionTable, PartitionType, FileSystem);

    /// <summary>Whether the text needs format version 2.</summary>
    public bool NeedsVolumesVersion => MoreImages.Count > 0 || PartitionTable != null || PartitionType != null || FileSystem != null;

    /// <summary>Identifies what the plugin reads as: its images, table and type (a change means another disk).</summary>
    public string DiskKey => string.Join(";", Images.Select(i => $"{i.Path}|{i.Id:D}")) + $";{PartitionTable};{PartitionType};{FileSystem}";

    /// <summary>The first bytes of every plugin file.</summary>
    public const string Magic = "backupfuse-plugin ";

    /// <summary>The format version this build writes.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Plugin files are never larger than this.</summary>
    public const int MaxSize = 64 * 1024;

    private static readonly byte[] MagicBytes = Encoding.ASCII.GetBytes(Magic);

    /// <summary>Whether content that starts with <paramref name="head"/> is meant to be a plugin file.</summary>
    public static bool Sniff(ReadOnlySpan<byte> head) => head.StartsWith(MagicBytes);

    /// <summary>Reads and validates the plugin at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid plugin; the message names it and says why.</exception>
    /// <exception cref="IOException">The file is missing or not a regular file (a FIFO never blocks the reader).</exception>
    public static PluginFile Load(string path)
    {
        using var handle = BackupFuse.BackupImage.Reading.UnixFile.OpenRegular(path, out _);
        long length = RandomAccess.GetLength(handle);
        if (length > MaxSize)
        {
            throw new InvalidDataException($"{path}: not a plugin file (larger than {MaxSize} bytes)");
        }

        byte[] content = new byte[length];
        int n = RandomAccess.Read(handle, content, 0);
        return Parse(Encoding.UTF8.GetString(content, 0, n), path);
    }

    /// <summary>Parses plugin text; <paramref name="name"/> appears in error messages.</summary>
    public static PluginFile Parse(string text, string name)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        if (lines.Length == 0 || !lines[0].StartsWith(Magic, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{name}: not a plugin file (first line must be '{Magic}{CurrentVersion}')");
        }

        if (!int.TryParse(lines[0].AsSpan(Magic.Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int version))
        {
            throw new InvalidDataException($"{name}: damaged plugin file: bad version in first line '{lines[0]}'");
        }

        if (version != CurrentVersion && version != VolumesVersion)
        {
            throw new InvalidDataException($"{name}: plugin format version {version} is not supported by this build (it reads versions {CurrentVersion} and {VolumesVersion})");
        }

        string? image = null;
        Guid? id = null;
        bool pristine = false;
        var more = new List<PluginImage>();
        BackupFuse.Core.Partitions.PartitionTableKind? table = null;
        Guid? partitionType = null;
        BackupFuse.Core.FileSystems.SynthesizedFileSystemKind? fileSystem = null;
        for (int i = 1; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new InvalidDataException($"{name}: damaged plugin file: line {i + 1} is not 'key = value'");
            }

            string key = line[..eq].Trim();
            string value = line[(eq + 1)..].Trim();
            switch (key)
            {
                case "image" when image != null && version >= VolumesVersion:
                    if (id == null || (more.Count > 0 && more[^1].Id == Guid.Empty))
                    {
                        throw new InvalidDataException($"{name}: damaged plugin file: line {i + 1}: every 'image' needs its 'image-id' before the next 'image'");
                    }

                    more.Add(new PluginImage(NormalizeImage(value, name), Guid.Empty));
                    break;
                case "image" when image != null:
                    throw new InvalidDataException($"{name}: damaged plugin file: line {i + 1}: a second 'image' needs plugin format version {VolumesVersion}");
                case "image":
                    image = value;
                    break;
                case "image-id":
                    var g = Guid.TryParse(value, out var parsed) ? parsed : throw new InvalidDataException($"{name}: damaged plugin file: image-id '{value}' is not a GUID");
                    if (more.Count > 0)
                    {
                        more[^1] = more[^1].Id == Guid.Empty ? more[^1] with { Id = g } : throw new InvalidDataException($"{name}: damaged plugin file: line {i + 1}: a second 'image-id' for one image");
                    }
                    else
                    {
                        id = id == null ? g : throw new InvalidDataException($"{name}: damaged plugin file: line {i + 1}: a second 'image-id' for one image");
                    }

                    break;
                case "partition-table" when version >= VolumesVersion:
                    table = value switch
                    {
                        "gpt" => BackupFuse.Core.Partitions.PartitionTableKind.Gpt,
                        "mbr" => BackupFuse.Core.Partitions.PartitionTableKind.Mbr,
                        _ => throw new InvalidDataException($"{name}: damaged plugin file: partition-table '{value}' is unknown (gpt or mbr)"),
                    };
                    break;
                case "partition-type" when version >= VolumesVersion:
                    partitionType = Guid.TryParse(value, out var t) ? t : throw new InvalidDataException($"{name}: damaged plugin file: partition-type '{value}' is not a GUID");
                    break;
                case "filesystem" when version >= VolumesVersion:
                    fileSystem = value switch
                    {
                        "exfat" => BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.ExFat,
                        "fat32" => BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.Fat32,
                        _ => throw new InvalidDataException($"{name}: damaged plugin file: filesystem '{value}' is unknown (exfat or fat32)"),
                    };
                    break;
                case "view":
                    pristine = value == "pristine" ? true : throw new InvalidDataException($"{name}: damaged plugin file: view '{value}' is unknown (only 'pristine')");
                    break;
                default:
                    throw new InvalidDataException($"{name}: damaged plugin file: unknown key '{key}' on line {i + 1}");
            }
        }

        if (image != null && BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(image))
        {
            try
            {
                image = BackupFuse.Remote.RemoteLocation.Parse(image).Url;
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{name}: damaged plugin file: image: {e.Message}");
            }
        }
        else if (string.IsNullOrEmpty(image) || !Path.IsPathFullyQualified(image))
        {
            throw new InvalidDataException($"{name}: damaged plugin file: 'image = <absolute path>' is missing (a path, or an s3:// or http(s):// URL)");
        }

        if (id is null)
        {
            throw new InvalidDataException($"{name}: damaged plugin file: 'image-id = <guid>' is missing");
        }

        if (more.Count > 0 && more[^1].Id == Guid.Empty)
        {
            throw new InvalidDataException($"{name}: damaged plugin file: image {more[^1].Path} has no 'image-id'");
        }

        return new PluginFile(version, image, id.Value, pristine) { MoreImages = more, PartitionTable = table, PartitionType = partitionType, FileSystem = fileSystem };
    }

    private static string NormalizeImage(string image, string name)
    {
        if (BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(image))
        {
            try
            {
                return BackupFuse.Remote.RemoteLocation.Parse(image).Url;
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{name}: damaged plugin file: image: {e.Message}");
            }
        }

        return Path.IsPathFullyQualified(image) ? image : throw new InvalidDataException($"{name}: damaged plugin file: image '{image}' is not an absolute path or a remote URL");
    }

    /// <summary>The file's text.</summary>
    public string ToText() =>
        $"{Magic}{(NeedsVolumesVersion ? Math.Max(FormatVersion, VolumesVersion) : FormatVersion)}\n" +
        "# BackupFuse plugin file. Under `backupfuse mount` this file reads as a complete VHDX disk of the\n" +
        "# backup point named below; the backup itself is never modified. Written by `backupfuse plugin create`.\n" +
        $"image = {ImagePath}\n" +
        $"image-id = {ImageId:D}\n" +
        string.Concat(MoreImages.Select(i => $"image = {i.Path}\nimage-id = {i.Id:D}\n")) +
        (PartitionTable is { } table ? $"partition-table = {table.ToString().ToLowerInvariant()}\n" : string.Empty) +
        (PartitionType is { } type ? $"partition-type = {type:D}\n" : string.Empty) +
        (FileSystem is { } fs ? $"filesystem = {fs.ToString().ToLowerInvariant()}\n" : string.Empty) +
        (Pristine ? "view = pristine\n" : string.Empty);

    /// <summary>Writes the plugin atomically (temp file + rename) so a reader never sees half a file.</summary>
    public void Save(string path)
    {
        string full = Path.GetFullPath(path);
        string tmp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(tmp, ToText(), new UTF8Encoding(false));
        File.Move(tmp, full, overwrite: true);
    }
}
