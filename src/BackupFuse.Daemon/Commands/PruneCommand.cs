using System.CommandLine;
using System.Text.Json.Nodes;
using BackupFuse.BackupImage.Lifecycle;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Daemon.BackupPoints;
using BackupFuse.Daemon.Cli;
using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Commands;

// Design notes:
// - Plan (PrunePlan, from headers only), then act: folds first (each a verified, atomically renamed rewrite of a kept
//   point's own file, ImageFolder), deletions last (unlink + directory fsync each). So a crash leaves every kept point
//   readable and every forgotten one readable or gone.
// - Protected whatever the policy: points a plugin in a --plugins directory names, and points whose file any process
//   has open (OpenFileScanner: a mount serving a plugin keeps its chain's files open). Their chains stay intact.
//   Every image a plugin names is protected (a volume plugin, format 2, names several). Open files of other users'
//   processes are invisible in /proc when not root: then a warning says so, once.
// - A policy that keeps nothing (every --keep-* 0) is a usage error: it would delete every point.
// - The run holds the directory's LifecycleLock (not with --dry-run, which only reads): one merge/prune/commit at a time.
// - --dry-run prints the plan and touches nothing.

/// <summary><c>backupfuse prune</c>: retention for a directory of backup images.</summary>
public static class PruneCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var images = new Option<string>("--images") { Description = "The directory of images (.bfi) to prune.", Required = true };
        var keepLast = new Option<int>("--keep-last") { Description = "Keep the N newest points of each chain.", Required = true };
        var keepDaily = new Option<int>("--keep-daily") { Description = "Also keep the newest point of each of the D newest days (UTC)." };
        var keepWeekly = new Option<int>("--keep-weekly") { Description = "Also keep the newest point of each of the W newest ISO weeks." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan; change nothing." };
        var plugins = new Option<string[]>("--plugins") { Description = "Directories of plugin files; the points they name are kept.", AllowMultipleArgumentsPerToken = true };
        var json = new Option<bool>("--json") { Description = "Print the plan and what was done as JSON on standard output." };
        var passphrase = new PassphraseOptions();
        foreach (var o in new[] { keepLast, keepDaily, keepWeekly })
        {
            o.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() < 0)
                {
                    r.AddError($"{o.Name} must be 0 or more");
                }
            });
        }

        var command = new Command("prune",
            "Retention for a directory of backup images: keep the newest points (and one per day or week), forget the\n" +
            "others. Kept points whose parents are forgotten are merged (a synthetic full, or folded onto the nearest\n" +
            "kept point), verified and put in place first; then files nothing needs are deleted. Points named by plugins\n" +
            "in --plugins directories and images open in any process (a mount) are always kept.\n\n" +
            "Examples:\n  backupfuse prune --images /backups --keep-last 7 --dry-run\n" +
            "  backupfuse prune --images /backups --keep-last 3 --keep-daily 7 --keep-weekly 4 --plugins /vms");
        command.Options.Add(images);
        command.Options.Add(keepLast);
        command.Options.Add(keepDaily);
        command.Options.Add(keepWeekly);
        command.Options.Add(dryRun);
        command.Options.Add(plugins);
        command.Options.Add(json);
        command.Validators.Add(r =>
        {
            if (r.GetValue(keepLast) <= 0 && r.GetValue(keepDaily) <= 0 && r.GetValue(keepWeekly) <= 0)
            {
                r.AddError("prune: every --keep-* rule is 0, which would delete every point; keep at least one (e.g. --keep-last 1)");
            }
        });
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            string dir = Path.GetFullPath(parse.GetValue(images)!);
            if (!Directory.Exists(dir))
            {
                throw new CliError($"{dir}: no such directory");
            }

            bool dry = parse.GetValue(dryRun);
            using var directoryLock = dry ? null : LifecycleLock.Acquire(dir);
            var catalog = new ImageCatalog([dir]);
            var entries = catalog.Entries;
            var protect = new Dictionary<Guid, string>();
            foreach (var pluginDir in parse.GetValue(plugins) ?? [])
            {
                foreach (var (file, plugin) in Plugins(pluginDir))
                {
                    foreach (var image in plugin.Images)
                    {
                        protect.TryAdd(image.Id, $"plugin {file}");
                    }
                }
            }

            foreach (var e in entries)
            {
                var users = OpenFileScanner.Users(e.Path);
                if (users.Count > 0)
                {
                    protect.TryAdd(e.Id, $"open by {OpenFileScanner.Describe(users)}");
                }
            }

            var policy = new RetentionPolicy(parse.GetValue(keepLast), parse.GetValue(keepDaily), parse.GetValue(keepWeekly));
            var plan = PrunePlan.Create(entries, policy, protect, catalog.Find);
            bool asJson = parse.GetValue(json);
            string[] notRoot = Environment.IsPrivilegedProcess ? [] : new[] { $"{dir}: not running as root: images held open by other users' processes (their mounts) cannot be seen in /proc and are not protected" };
            foreach (var w in notRoot.Concat(plan.Warnings).Concat(catalog.Problems.Select(p => $"{p.Path}: skipped: {p.Reason}")))
            {
                Console.Error.WriteLine($"warning: {w}");
            }

            var done = new JsonArray();
            if (!asJson)
            {
                Print(plan, dry);
            }

            if (!dry)
            {
                var pass = passphrase.Resolve(parse);
                var keptIds = plan.Kept.Select(k => k.Id).ToHashSet();
                foreach (var k in plan.Kept.Where(k => k.Fold != FoldKind.None))
                {
                    catalog.Refresh();
                    using var chain = BackupChain.Open(k.Path, catalog, pass);
                    int layers = 1;
                    while (layers < chain.Layers.Count && !keptIds.Contains(chain.Layers[layers].Id))
                    {
                        layers++;
                    }

                    FoldResult r;
                    using (var bar = new ProgressBar($"merge {Path.GetFileName(k.Path)}"))
                    {
                        r = ImageFolder.Fold(chain, layers, chain.Top.Path, pass, replace: true, new Progress(bar), token);
                    }

                    done.Add((JsonNode)new JsonObject { ["action"] = r.IsFull ? "synthetic-full" : "folded", ["image"] = r.Path, ["id"] = r.ImageId, ["parent"] = r.IsFull ? (Guid?)null : r.ParentId, ["fileSize"] = r.FileSize });
                    if (!asJson)
                    {
                        Console.Error.WriteLine($"{r.Path}: {(r.IsFull ? "synthetic full" : $"folded onto {r.ParentId}")} ({r.LayersFolded} images) -> {Bytes.Format(r.FileSize)}, verified");
                    }
                }

                foreach (var file in plan.Deletions)
                {
                    long size = new FileInfo(file).Length;
                    DurableFile.Delete(file);
                    CrashPoint.Hit("prune: deleted " + file);
                    done.Add((JsonNode)new JsonObject { ["action"] = "deleted", ["image"] = file, ["fileSize"] = size });
                    if (!asJson)
                    {
                        Console.Error.WriteLine($"{file}: deleted ({Bytes.Format(size)})");
                    }
                }
            }

            if (asJson)
            {
                JsonOutput.Write(new JsonObject
                {
                    ["directory"] = dir,
                    ["dryRun"] = dry,
                    ["keep"] = JsonOutput.Array(plan.Kept, k => new JsonObject { ["id"] = k.Id, ["image"] = k.Path, ["created"] = k.CreatedUtc, ["reasons"] = JsonOutput.Strings(k.Reasons), ["fold"] = k.Fold.ToString(), ["onto"] = k.Onto }),
                    ["forget"] = JsonOutput.Array(plan.Forgotten, f => new JsonObject { ["id"] = f.Id, ["image"] = f.Path, ["created"] = f.CreatedUtc }),
                    ["delete"] = JsonOutput.Strings(plan.Deletions),
                    ["warnings"] = JsonOutput.Strings(plan.Warnings),
                    ["done"] = done,
                });
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Print(PrunePlan plan, bool dry)
    {
        string prefix = dry ? "would " : string.Empty;
        foreach (var k in plan.Kept)
        {
            string fold = k.Fold switch
            {
                FoldKind.SyntheticFull => $"; {prefix}merge into a synthetic full",
                FoldKind.OntoKeptAncestor => $"; {prefix}fold onto {k.Onto}",
                _ => string.Empty,
            };
            Console.WriteLine($"keep   {k.Path} ({k.CreatedUtc:yyyy-MM-dd HH:mm:ss} UTC: {string.Join(", ", k.Reasons)}){fold}");
        }

        foreach (var f in plan.Forgotten)
        {
            Console.WriteLine($"forget {f.Path} ({f.CreatedUtc:yyyy-MM-dd HH:mm:ss} UTC)");
        }

        foreach (var d in plan.Deletions)
        {
            Console.WriteLine($"{(dry ? "would delete" : "delete")} {d}");
        }
    }

    /// <summary>The plugin files directly in <paramref name="directory"/> (any format; recognised by their first line).</summary>
    private static IEnumerable<(string File, PluginFile Plugin)> Plugins(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new CliError($"--plugins {directory}: no such directory");
        }

        foreach (var file in Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
        {
            PluginFile? plugin = null;
            try
            {
                byte[] head = new byte[32];
                int n;
                using (var h = UnixFile.OpenRegular(file, out _))
                {
                    n = RandomAccess.Read(h, head, 0);
                }

                if (PluginFile.Sniff(head.AsSpan(0, n)))
                {
                    plugin = PluginFile.Load(file);
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                throw new CliError($"{file}: cannot read the plugin file to protect its backup point: {e.Message}");
            }

            if (plugin != null)
            {
                yield return (file, plugin);
            }
        }
    }

    // Synchronous progress: System.Progress<T> would post to the thread pool and report out of order.
    private sealed class Progress(ProgressBar bar) : IProgress<BackupProgress>
    {
        public void Report(BackupProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
