using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Commands;

// Design notes:
// - The plugin's disk as its guests left it (backup point + differencing VHDX, BackupPointStack.Disk) is backed up as
//   an INCREMENTAL of the plugin's point: the writer compares each chunk with the chain's index (no parent payload is
//   read) and stores only the chunks that differ, so the new file holds the VM's changes. An encrypted chain's
//   incremental is encrypted with the chain's key parameters (BackupWriter's rule). The disk keeps the backup's size:
//   bytes a guest wrote past its last byte (a disk ending mid-sector) are not part of any backup point.
// - Refused while the plugin or its changes are open (a running VM), like reset: a disk being written is not a state.
// - --reset, in this order, each step durable before the next: the image (BackupWriter: .partial, fsync, rename,
//   directory fsync), the plugin rewritten to name the new point (temp, fsync, rename, directory fsync), then the
//   changes dropped. A crash between the last two leaves the plugin on the new point with changes made for the old
//   one: the mount refuses them (their parent linkage names the old point's VHDX) and `backupfuse reset` drops them;
//   nothing is lost, the new image holds them.

/// <summary><c>backupfuse commit</c>: a plugin's changes become a new incremental of its backup point.</summary>
public static partial class CommitCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var plugin = new Argument<string>("plugin") { Description = "The plugin file whose changes (the differencing VHDX) to commit." };
        var dest = new Argument<string>("dest") { Description = "The new incremental image (.bfi) to write; must not exist." };
        var reset = new Option<bool>("--reset") { Description = "Then point the plugin at the new image and drop its changes (the VM continues from the new point)." };
        var images = ImagesOption.Create();
        var json = new Option<bool>("--json") { Description = "Print the result as JSON on standard output." };
        var passphrase = new PassphraseOptions();
        var command = new Command("commit",
            "Turn what VMs wrote to a plugin's disk into a new incremental backup whose parent is the plugin's backup\n" +
            "point: only the changed chunks are stored. With --reset the plugin then names the new point and its changes\n" +
            "are dropped. Refused while the disk is open (a running VM).\n\n" +
            "Examples:\n  backupfuse commit /vms/web01.vhdx /backups/web01-recovered.bfi\n  backupfuse commit /vms/web01.vhdx /backups/web01-recovered.bfi --reset --images /backups");
        command.Arguments.Add(plugin);
        command.Arguments.Add(dest);
        command.Options.Add(reset);
        command.Options.Add(images);
        command.Options.Add(json);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            string pluginPath = Path.GetFullPath(parse.GetValue(plugin)!);
            string destPath = Path.GetFullPath(parse.GetValue(dest)!);
            var point = BackupPointResolver.Resolve(pluginPath);
            if (point.Plugin == null && (point.IsVhdx || PluginFormats.FromPath(pluginPath) != null) && MountTable.List().Any(m => (ImageRoots.RealPath(pluginPath) ?? pluginPath).StartsWith(m.MountPoint.TrimEnd('/') + "/", StringComparison.Ordinal)))
            {
                throw new CliError($"{pluginPath} is in use by a mount (it reads as its disk there); stop the VM and unmount first");
            }

            if (point.Plugin == null)
            {
                throw new CliError($"{pluginPath}: not a plugin file (use it outside the mount); nothing to commit");
            }

            var changes = ChangesLocation.ForPlugin(pluginPath);
            if (!changes.Exists)
            {
                throw new CliError($"{pluginPath}: no changes to commit (it reads as its backup point {point.Plugin.ImageId})");
            }

            var users = OpenFileScanner.Users(pluginPath, changes.ChangesFile);
            if (users.Count > 0)
            {
                throw new CliError($"{pluginPath} is in use by {OpenFileScanner.Describe(users)}; stop the VM first");
            }

            if (File.Exists(destPath) || Directory.Exists(destPath))
            {
                throw new CliError($"{destPath} already exists: an image is never overwritten");
            }

            using var directoryLock = LifecycleLock.Acquire(Path.GetDirectoryName(destPath)!);
            var pass = passphrase.Resolve(parse);
            var chain = BackupPointResolver.OpenChain(point, parse, images, pass);
            BackupResult result;
            using (var stack = BackupPointStack.Open(chain, point.Plugin, changes, create: false))
            {
                var options = new BackupOptions { Parent = chain, Codec = chain.Top.Header.Codec, Passphrase = pass };
                using var bar = new ProgressBar($"commit {Path.GetFileName(pluginPath)}");
                result = BackupWriter.Backup(stack.Disk, destPath, options, new Progress(bar), token);
            }

            CrashPoint.Hit("commit: image written");
            if (parse.GetValue(reset))
            {
                SavePlugin(pluginPath, point.Plugin with { ImagePath = result.Destination, ImageId = result.ImageId });
                CrashPoint.Hit("commit: plugin rewritten");
                changes.Delete();
                CrashPoint.Hit("commit: changes dropped");
            }

            if (parse.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["plugin"] = pluginPath, ["image"] = result.Destination, ["id"] = result.ImageId, ["parent"] = result.ParentId, ["fileSize"] = result.ImageSize,
                    ["dataChunks"] = result.DataChunks, ["zeroChunks"] = result.ZeroChunks, ["reset"] = parse.GetValue(reset), ["seconds"] = result.Elapsed.TotalSeconds,
                });
            }
            else
            {
                Console.Error.WriteLine(
                    $"{result.Destination}: incremental {result.ImageId} of {result.ParentId} with the changes of {pluginPath}" +
                    $" -> {Bytes.Format(result.ImageSize)} ({result.DataChunks} data, {result.ZeroChunks} zero chunks)" +
                    (parse.GetValue(reset) ? "; the plugin now names it, its changes were dropped" : string.Empty));
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// Writes the plugin durably: temporary file (with the old plugin's owner and mode: a plugin may belong to the user
    /// whose VM uses it), fsync, rename over the plugin, fsync of the directory.
    /// </summary>
    private static void SavePlugin(string path, PluginFile plugin)
    {
        string tmp = path + ".commit-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp";
        var old = BackupFuse.BackupImage.Reading.UnixFile.TryStat(path);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(new UTF8Encoding(false).GetBytes(plugin.ToText()));
                if (old is { } stat)
                {
                    int fd = (int)fs.SafeFileHandle.DangerousGetHandle();
                    if (fchown(fd, stat.Uid, stat.Gid) != 0 || fchmod(fd, stat.Mode & 0xFFF) != 0)
                    {
                        throw new IOException($"{tmp}: cannot give the new plugin file the owner and mode of {path} (errno {Marshal.GetLastPInvokeError()})");
                    }
                }

                fs.Flush(flushToDisk: true);
            }

            DurableFile.Publish(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchown(int fd, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchmod(int fd, uint mode);

    // Synchronous progress: System.Progress<T> would post to the thread pool and report out of order.
    private sealed class Progress(ProgressBar bar) : IProgress<BackupProgress>
    {
        public void Report(BackupProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
