using System.CommandLine;
using BackupFuse.BackupImage.Reading;
using BackupFuse.Daemon.Cli;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse verify</c>: read and check every chunk of a chain.</summary>
public static class VerifyCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("image") { Description = "A backup image (.bfi) or a plugin file; its whole chain is checked." };
        var images = ImagesOption.Create();
        var passphrase = new PassphraseOptions();
        var command = new Command("verify",
            "Read every chunk of the whole chain and check its checksum and hash. Each bad chunk is reported with its\n" +
            "image, index and disk offset; the exit code is 1 if any chunk is bad.\n\n" +
            "Example:\n  backupfuse verify /backups/web01-1122.bfi --images /backups");
        command.Arguments.Add(target);
        command.Options.Add(images);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            var point = BackupPointResolver.Resolve(parse.GetValue(target)!);
            var pass = passphrase.Resolve(parse);
            using var chain = BackupPointResolver.OpenChain(point, parse, images, pass);
            VerifyResult result;
            using (var bar = new ProgressBar("verify"))
            {
                result = ChainVerifier.Verify(chain, new Progress(bar), onBadChunk: null, token);
            }

            // Opening the chain checked every parent binding; images older than the binding are linked by id only.
            foreach (var l in chain.Describe().Where(l => !l.IsFull && !l.ParentBound))
            {
                Console.WriteLine($"note: {l.Path}: parent not bound (older image): only its id links it to its parent, a wrong parent of the same size would not be detected");
            }

            foreach (var b in result.BadChunks)
            {
                Console.WriteLine($"BAD {b.ImagePath}: chunk {b.ChunkIndex} (disk offset {b.DiskOffset}): {b.Reason}");
            }

            bool catalogsValid = VerifyCatalogs(chain);
            bool valid = result.IsValid && catalogsValid;
            Console.WriteLine($"{(valid ? "OK" : "FAILED")}: {result.Images} image(s), {result.ChunksChecked} chunks, {Bytes.Format(result.BytesChecked)} checked, {result.BadChunks.Count} bad" +
                (catalogsValid ? string.Empty : ", damaged file catalog"));
            return valid ? ExitCodes.Ok : ExitCodes.Error;
        });
        return command;
    }

    /// <summary>
    /// For a file-level chain: every point's catalog parses and every file's data lies inside its stream
    /// (FileCatalog's checks). Prints one line per point; false if any is damaged.
    /// </summary>
    private static bool VerifyCatalogs(BackupChain chain)
    {
        if (!BackupFuse.BackupImage.Files.FileImageFields.IsFileImage(chain.Top.Header))
        {
            return true;
        }

        bool ok = true;
        for (int i = 0; i < chain.Layers.Count; i++)
        {
            var layer = chain.Layers[i];
            try
            {
                using var tree = BackupFuse.BackupImage.Files.FileImageTree.Open(chain, i);
                Console.WriteLine($"catalog {layer.Path}: {tree.Count} entries, {tree.Catalog.FileCount} files, every file inside the data stream");
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                Console.WriteLine($"BAD {e.Message}");
                ok = false;
            }
        }

        return ok;
    }

    private sealed class Progress(ProgressBar bar) : IProgress<VerifyProgress>
    {
        public void Report(VerifyProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
