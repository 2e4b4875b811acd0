using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;
using BackupFuse.Vhdx;
using BackupFuse.Vhdx.Differencing;
using BackupFuse.Daemon.BackupPoints;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse info</c>: what an image or plugin is, and its chain.</summary>
public static class InfoCommand
{
    private static string DescribeChanges(string pluginPath, VhdxLayout layout)
    {
        var changes = ChangesLocation.ForPlugin(Path.GetFullPath(pluginPath));
        if (!changes.Exists)
        {
            return "none (reads as the backup point)";
        }

        var users = OpenFileScanner.Users(changes.ChangesFile);
        if (users.Count > 0)
        {
            return $"{changes.ChangesFile}, in use by {OpenFileScanner.Describe(users)}";
        }

        using var child = changes.Open(layout.DataWriteGuid, layout.VirtualDiskSize);
        var stats = child.GetStatistics();
        return $"{Bytes.Format(stats.ChangedBytes)} of the disk changed ({stats.AllocatedBlocks} blocks of {Bytes.Format(stats.PayloadBlockSize)}), " +
            $"{stats.PatchedPages} header pages rewritten; {changes.ChangesFile} is {Bytes.Format(stats.FileLength)}";
    }

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("image") { Description = "A backup image (.bfi) or a plugin file (.vhdx)." };
        var images = ImagesOption.Create();
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text." };
        var passphrase = new PassphraseOptions();
        var command = new Command("info",
            "Show a backup point: identity, parent, the whole chain, sizes, compression ratio, encryption.\n\n" +
            "Examples:\n  backupfuse info /backups/web01-1122.bfi\n  backupfuse info /vms/web01.vhdx --images /backups\n  backupfuse info /backups/web01-full.bfi --json");
        command.Arguments.Add(target);
        command.Options.Add(images);
        command.Options.Add(json);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, _) =>
        {
            var point = BackupPointResolver.Resolve(parse.GetValue(target)!);
            using var disk = BackupPointResolver.OpenPoint(point, parse, images, passphrase.Resolve(parse));
            var chain = disk.Primary;
            var layers = chain.Describe();
            // The VHDX view is only a view: a disk beyond VHDX's 64 TiB has none, but its backup is still described.
            VhdxLayout? vhdx = null;
            string? noVhdx = null;
            try
            {
                vhdx = VhdxLayout.Create(disk.DiskSize, disk.Identity);
            }
            catch (InvalidDataException e)
            {
                noVhdx = e.Message;
            }

            var files = BackupFuse.BackupImage.Files.FileImageFields.Read(chain.Top.Header);
            var mappings = disk.FileVolumes.Where(v => v != null).SelectMany(v => v!.Mappings).ToList();
            if (parse.GetValue(json))
            {
                var doc = new JsonObject
                {
                    ["plugin"] = point.PluginPath,
                    ["image"] = chain.Top.Path,
                    ["id"] = chain.Top.Id,
                    ["diskSize"] = chain.DiskSize,
                    ["content"] = files != null ? "files" : chain.Top.Header.IsVolume ? "volume" : "disk",
                    ["files"] = files == null ? null : new JsonObject
                    {
                        ["files"] = files.Files, ["directories"] = files.Directories, ["symlinks"] = files.Symlinks, ["others"] = files.Others,
                        ["contentBytes"] = files.ContentBytes, ["newContentBytes"] = files.NewContentBytes,
                        ["catalogOffset"] = files.CatalogOffset, ["catalogLength"] = files.CatalogLength,
                    },
                    ["fileSystem"] = chain.Top.Header.IsVolume ? BackupFuse.BackupImage.Volumes.FileSystemProbe.Describe(chain.Top.Header.FileSystem) : null,
                    ["presentedAs"] = disk.FileVolumes.FirstOrDefault(v => v != null) is { } fv ? fv.Kind.ToString().ToLowerInvariant() : null,
                    ["nameMappings"] = files == null ? null : JsonOutput.Array(mappings, m => new JsonObject { ["path"] = m.Path, ["storedName"] = m.StoredName, ["reason"] = m.Reason }),
                    ["vhdxSize"] = vhdx?.FileLength,
                    ["vhdxDataWriteGuid"] = vhdx?.DataWriteGuid,
                    ["chain"] = JsonOutput.Array(layers, l => new JsonObject
                    {
                        ["path"] = l.Path, ["id"] = l.Id, ["parent"] = l.IsFull ? (Guid?)null : l.ParentId, ["parentBound"] = l.IsFull ? (bool?)null : l.ParentBound,
                        ["format"] = l.FormatVersion, ["created"] = l.CreatedUtc,
                        ["fileSize"] = l.FileSize, ["chunkSize"] = l.ChunkSize, ["codec"] = l.Codec.ToString(), ["encryption"] = l.Encryption.ToString(),
                        ["dataChunks"] = l.DataChunks, ["zeroChunks"] = l.ZeroChunks, ["absentChunks"] = l.AbsentChunks, ["compressionRatio"] = l.CompressionRatio,
                    }),
                };
                JsonOutput.Write(doc);
                return ExitCodes.Ok;
            }

            if (point.PluginPath != null)
            {
                Console.WriteLine($"plugin:       {point.PluginPath}{(point.Plugin!.Pristine ? " (pristine view, read-only)" : string.Empty)}");
                if (vhdx == null)
                {
                    Console.WriteLine($"  VHDX:       none: {noVhdx}");
                }
                else
                {
                    Console.WriteLine($"  VHDX size:  {Bytes.Format(vhdx.FileLength)} ({vhdx.FileLength} bytes), DataWriteGuid {vhdx.DataWriteGuid:B}");
                    Console.WriteLine($"  changes:    {DescribeChanges(point.PluginPath, vhdx)}");
                }
            }

            Console.WriteLine(files != null
                ? $"content:      files: {files.Files} files, {files.Directories} directories, {files.Symlinks} symlinks, {files.Others} other; " +
                  $"{Bytes.Format(files.ContentBytes)} of content ({Bytes.Format(files.NewContentBytes)} stored by this image)"
                : chain.Top.Header.IsVolume
                ? $"content:      volume, file system {BackupFuse.BackupImage.Volumes.FileSystemProbe.Describe(chain.Top.Header.FileSystem)} (a plugin shows it as partition 1 of a synthesized disk)"
                : "content:      whole disk");
            Console.WriteLine($"{(files != null ? "data stream: " : chain.Top.Header.IsVolume ? "volume size: " : "disk size:   ")} {Bytes.Format(chain.DiskSize)} ({chain.DiskSize} bytes)");
            if (disk.FileVolumes.FirstOrDefault(v => v != null) is { } presented)
            {
                Console.WriteLine($"presented as: {(presented.Kind == BackupFuse.Core.FileSystems.SynthesizedFileSystemKind.Fat32 ? "FAT32" : "exFAT")}, " +
                    $"{mappings.Count} name(s) stored under another name or left out{(mappings.Count > 0 ? " (--json lists them)" : string.Empty)}");
            }
            if (disk.Shape.Partitions is { } partitions && point.PluginPath != null)
            {
                Console.WriteLine($"  disk:       {Bytes.Format(disk.DiskSize)} with {disk.Chains.Count} partition(s) ({(point.Plugin!.PartitionTable == BackupFuse.Core.Partitions.PartitionTableKind.Mbr ? "MBR" : "GPT")}):");
                for (int i = 0; i < disk.Chains.Count; i++)
                {
                    Console.WriteLine($"    {i + 1}: {disk.Chains[i].Top.Path} at {partitions.PartitionOffsets[i]}, {Bytes.Format(disk.Chains[i].DiskSize)}");
                }
            }

            Console.WriteLine($"chain:        {layers.Count} image(s), newest first");
            foreach (var l in layers)
            {
                Console.WriteLine($"- {l.Path}");
                Console.WriteLine($"    identity:    {l.Id}");
                Console.WriteLine($"    parent:      {(l.IsFull ? "none (full backup)" : $"{l.ParentId}, {(l.ParentBound ? "bound to its content (checked)" : "parent not bound (older image): linked by id only")}")}");
                Console.WriteLine($"    created:     {l.CreatedUtc.ToString("u", CultureInfo.InvariantCulture)}   format {l.FormatVersion}");
                Console.WriteLine($"    file size:   {Bytes.Format(l.FileSize)}   chunks of {Bytes.Format(l.ChunkSize)}, {l.Codec}, encryption {l.Encryption}");
                Console.WriteLine($"    chunks:      {l.DataChunks} data, {l.ZeroChunks} zero, {l.AbsentChunks} {(l.IsFull ? "never written (holes, read as zeros)" : "not in this image (the parent's)")}");
                Console.WriteLine($"    compression: {l.CompressionRatio:F2}:1");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
