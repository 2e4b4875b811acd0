using System.CommandLine;
using BackupFuse.Blocks;
using BackupFuse.Daemon.Cli;
using BackupFuse.Vhdx;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse export</c>: the full disk of a backup point as a standalone file.</summary>
public static class ExportCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("image") { Description = "A backup image (.bfi) or a plugin file (.vhdx)." };
        var output = new Argument<string>("out") { Description = "File to write (must not exist), or - for standard output." };
        var format = new Option<string>("--format") { Description = "raw: the plain disk; vhdx: a standalone fixed VHDX.", DefaultValueFactory = _ => "raw" };
        format.AcceptOnlyFromAmong("raw", "vhdx");
        var images = ImagesOption.Create();
        var passphrase = new PassphraseOptions();
        var command = new Command("export",
            "Write the full disk of a backup point to a standalone file (zero areas stay holes).\n\n" +
            "Examples:\n  backupfuse export /backups/web01-1122.bfi /tmp/web01.raw\n  backupfuse export /vms/web01.vhdx /tmp/web01.vhdx --format vhdx --images /backups");
        command.Arguments.Add(target);
        command.Arguments.Add(output);
        command.Options.Add(format);
        command.Options.Add(images);
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            var point = BackupPointResolver.Resolve(parse.GetValue(target)!);
            using var chain = BackupPointResolver.OpenChain(point, parse, images, passphrase.Resolve(parse));
            IBlockSource source = chain.CreateSource();
            if (parse.GetValue(format) == "vhdx")
            {
                source = new SynthesizedVhdx(source, chain.Top.Id);
            }

            using (source)
            {
                string outPath = parse.GetValue(output)!;
                using (var bar = new ProgressBar("export"))
                {
                    SparseCopy.Copy(source, outPath, bar, token);
                }

                Console.Error.WriteLine($"exported {Bytes.Format(source.Length)} to {outPath}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
