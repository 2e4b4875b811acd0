using System.CommandLine;
using System.Text.Json.Nodes;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Daemon.Cli;

namespace BackupFuse.Daemon.Commands;

// Design notes:
// - `merge IMAGE` writes a synthetic full of IMAGE's point (its whole chain folded), `--into-parent` folds IMAGE into
//   its parent (the result's parent is the grandparent). Either way the result carries IMAGE's identity (an identity
//   names a disk state, docs/lifecycle.md), so every child of IMAGE still resolves, and by default it REPLACES IMAGE's
//   file atomically after verification (ImageFolder): processes that have the old file open (a mount) keep reading
//   it; new opens get the new one. `--output` writes beside it instead and leaves IMAGE alone (the catalog then
//   prefers the full). The parents are never touched: prune deletes what nothing needs any more.

/// <summary><c>backupfuse merge</c>: a synthetic full of a backup point, or an incremental folded into its parent.</summary>
public static class MergeCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("image") { Description = "The backup image (.bfi) whose point to merge." };
        var intoParent = new Option<bool>("--into-parent") { Description = "Fold the image into its parent only (the result is an incremental of the grandparent, or a full)." };
        var output = new Option<string?>("--output", "-o") { Description = "Write the merged image to this new file instead of replacing the image's file." };
        var images = ImagesOption.Create();
        var json = new Option<bool>("--json") { Description = "Print the result as JSON on standard output." };
        var passphrase = new PassphraseOptions();
        var command = new Command("merge",
            "Write a synthetic full of a backup point (its whole chain folded into one file, payloads copied, not\n" +
            "recompressed), verify it chunk by chunk, and only then put it in place of the image (atomic rename; open\n" +
            "mounts keep reading the old file). It keeps the point's identity, so later incrementals still resolve.\n" +
            "The parents are not deleted (see prune). Encrypted chains stay encrypted with the same passphrase.\n\n" +
            "Examples:\n  backupfuse merge /backups/web01-1122.bfi\n  backupfuse merge /backups/web01-1123.bfi --into-parent\n" +
            "  backupfuse merge /backups/web01-1122.bfi -o /backups/web01-1122-full.bfi --json");
        command.Arguments.Add(target);
        command.Options.Add(intoParent);
        command.Options.Add(output);
        command.Options.Add(images);
        command.Options.Add(json);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            string path = parse.GetValue(target)!;
            if (ImageAddress.IsRemote(path))
            {
                throw new CliError($"{path}: merge works on local images (download it, or merge where it was written)");
            }

            if (UnixFile.TryStat(path) == null)
            {
                throw new CliError($"{path}: no such file");
            }

            path = Path.GetFullPath(path);
            string? outPath = parse.GetValue(output);
            string dest = outPath == null ? path : Path.GetFullPath(outPath);
            using var directoryLock = LifecycleLock.Acquire(Path.GetDirectoryName(dest)!);
            var pass = passphrase.Resolve(parse);
            using var chain = BackupChain.Open(path, ImagesOption.Catalog(parse, images, path), pass);
            if (chain.Top.IsFull)
            {
                throw new CliError($"{path}: already a full backup; nothing to merge");
            }

            int layers = parse.GetValue(intoParent) ? 2 : chain.Layers.Count;
            FoldResult result;
            using (var bar = new ProgressBar($"merge {Path.GetFileName(path)}"))
            {
                result = ImageFolder.Fold(chain, layers, dest, pass, replace: outPath == null, new Progress(bar), token);
            }

            Report(result, path, parse.GetValue(json));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Report(FoldResult r, string source, bool json)
    {
        if (json)
        {
            JsonOutput.Write(new JsonObject
            {
                ["image"] = r.Path, ["source"] = source, ["id"] = r.ImageId, ["parent"] = r.IsFull ? (Guid?)null : r.ParentId, ["kind"] = r.IsFull ? "full" : "incremental",
                ["layersFolded"] = r.LayersFolded, ["fileSize"] = r.FileSize, ["dataChunks"] = r.DataChunks, ["zeroChunks"] = r.ZeroChunks, ["seconds"] = r.Elapsed.TotalSeconds,
            });
            return;
        }

        Console.Error.WriteLine(
            $"{r.Path}: {(r.IsFull ? "synthetic full" : $"incremental of {r.ParentId}")} of {r.ImageId} ({r.LayersFolded} images folded)" +
            $" -> {Bytes.Format(r.FileSize)} in {r.Elapsed.TotalSeconds:F1} s, verified");
    }

    // Synchronous progress: System.Progress<T> would post to the thread pool and report out of order.
    private sealed class Progress(ProgressBar bar) : IProgress<BackupProgress>
    {
        public void Report(BackupProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
