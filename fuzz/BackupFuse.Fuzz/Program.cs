using SharpFuzz;

namespace BackupFuse.Fuzz;

// Design notes:
// - The harness's command line (scripts/fuzz.sh drives it):
//     list                          the targets, one per line: name and description
//     seeds TARGET DIR              writes the target's seed corpus into DIR
//     fuzz TARGET                   the AFL loop (SharpFuzz out-of-process persistent mode): reads inputs, runs them
//     replay TARGET PATH...         runs files (or every file of directories) within the bounds; exit 1 if any fails
// - Exit codes: 0 ok, 1 a replayed input failed, 2 usage.

/// <summary>Entry point of the fuzzing harness.</summary>
public static class Program
{
    /// <summary>Runs one harness command.</summary>
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            return args switch
            {
                ["list"] => List(),
                ["seeds", var name, var dir] => Seeds(FuzzTarget.Find(name), dir),
                ["fuzz", var name] => Fuzz(FuzzTarget.Find(name)),
                ["replay", var name, .. var paths] when paths.Length > 0 => Replay(FuzzTarget.Find(name), paths),
                _ => Usage(),
            };
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: BackupFuse.Fuzz list | seeds TARGET DIR | fuzz TARGET | replay TARGET PATH...");
        return 2;
    }

    private static int List()
    {
        foreach (var t in FuzzTarget.All)
        {
            Console.WriteLine($"{t.Name}\t{t.Description}");
        }

        return 0;
    }

    private static int Seeds(FuzzTarget target, string directory)
    {
        Directory.CreateDirectory(directory);
        target.WriteSeeds(directory);
        return 0;
    }

    private static int Fuzz(FuzzTarget target)
    {
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            Bounds.Run(target, buffer.ToArray());
        });
        return 0;
    }

    private static int Replay(FuzzTarget target, string[] paths)
    {
        int failed = 0;
        int total = 0;
        foreach (string file in ReplayFiles(paths))
        {
            total++;
            var failure = Bounds.Check(target, File.ReadAllBytes(file));
            if (failure != null)
            {
                failed++;
                Console.WriteLine($"FAIL {file}: {failure.GetType().Name}: {failure.Message}");
                Console.WriteLine(failure.StackTrace);
            }
        }

        Console.WriteLine($"{target.Name}: {total} inputs, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>The files named by <paramref name="paths"/>: files as given, directories' files (not README*), sorted.</summary>
    public static IEnumerable<string> ReplayFiles(IEnumerable<string> paths) =>
        paths.SelectMany<string, string>(p => Directory.Exists(p)
            ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories)
                .Where(f => !Path.GetFileName(f).StartsWith("README", StringComparison.Ordinal) && !Path.GetFileName(f).StartsWith('.'))
                .Order(StringComparer.Ordinal)
            : [p]);
}
