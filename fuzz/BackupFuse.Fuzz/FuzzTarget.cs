using System.Reflection;

namespace BackupFuse.Fuzz;

// Design notes:
// - One subclass per parser of untrusted bytes. Run feeds the input to the REAL code through its public API and
//   returns when the input ends in a result or in one of the exception types that API documents (the subclass catches
//   exactly those); anything else escapes, and the driver (AFL through SharpFuzz, or Replay) records it as a crash.
// - Adding a target is one class: derive from FuzzTarget, give it a Name, Run and Seeds; All finds it by reflection
//   (public parameterless constructor). Its dictionary, if any, is fuzz/dictionaries/<Name>.dict.
// - Seeds are made by the project's own writers at fuzz time (small images of every kind, damaged examples), so no
//   binary blobs are committed; Seeds writes them into a directory.
// - Targets are stateless between inputs apart from caches that do not change results (a passphrase's derived key).
//   Not thread-safe: one input at a time.

/// <summary>A fuzz target: one parser of untrusted bytes, driven through its public API.</summary>
public abstract class FuzzTarget
{
    // Before All: the targets' constructors may name scratch files.
    private static readonly Lazy<string> Scratch = new(CreateScratch);

    /// <summary>The target's name on the command line and under tests/fuzz-regressions/.</summary>
    public abstract string Name { get; }

    /// <summary>One line: what the target parses and which outcomes count as a pass.</summary>
    public abstract string Description { get; }

    /// <summary>Most input bytes the target reads (AFL's inputs are capped at 1 MiB anyway).</summary>
    public virtual int MaxInputLength => 1 << 20;

    /// <summary>
    /// Parses <paramref name="input"/>; returns on a result or a documented exception, lets anything else escape.
    /// </summary>
    public abstract void Run(byte[] input);

    /// <summary>Writes the seed corpus (made with the project's writers) into <paramref name="directory"/>.</summary>
    public abstract void WriteSeeds(string directory);

    /// <summary>Every target in this assembly, by name.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } =
        [.. typeof(FuzzTarget).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(FuzzTarget)) && !t.IsAbstract)
            .Select(t => (FuzzTarget)Activator.CreateInstance(t)!)
            .OrderBy(t => t.Name, StringComparer.Ordinal)];

    /// <summary>The target called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such target.</exception>
    public static FuzzTarget Find(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"unknown fuzz target '{name}' (targets: {string.Join(", ", All.Select(t => t.Name))})", nameof(name));

    /// <summary>A scratch directory for targets whose API takes a path (tmpfs when there is one), made on first use.</summary>
    protected static string ScratchDirectory => Scratch.Value;

    private static string CreateScratch()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"backupfuse-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return dir;
    }

    /// <summary>Whether <paramref name="e"/> is the documented failure of a parser of bytes (the usual set).</summary>
    protected static bool IsDocumentedParseFailure(Exception e) => e is InvalidDataException or NotSupportedException;
}
