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
            using var chain = BackupPointResolver.OpenChain(point, parse, images, passphrase.Resolve(parse));
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

            Console.WriteLine($"{(result.IsValid ? "OK" : "FAILED")}: {result.Images} image(s), {result.ChunksChecked} chunks, {Bytes.Format(result.BytesChecked)} checked, {result.BadChunks.Count} bad");
            return result.IsValid ? ExitCodes.Ok : ExitCodes.Error;
        });
        return command;
    }

    private sealed class Progress(ProgressBar bar) : IProgress<VerifyProgress>
    {
        public void Report(VerifyProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
