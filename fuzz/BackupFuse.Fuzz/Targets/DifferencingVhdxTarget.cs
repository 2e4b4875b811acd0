using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - A differencing VHDX under .backupfuse/ may be left by a crashed daemon or edited by a user. The input (sparse
//   encoding, SparseInput) is written to a scratch file and opened the way the daemon opens it: log replay, headers,
//   region tables, metadata, parent locator, BAT, patch store; then every block is looked up and read, and the file is
//   closed (which flushes and empties the log). Expected linkage: the seeds' parent; the size is not pinned, so
//   mutated sizes and geometries are parsed too.

/// <summary>Differencing VHDX open (with log replay) and reads (src/BackupFuse.Vhdx/Differencing/).</summary>
public sealed class DifferencingVhdxTarget : FuzzTarget
{
    private readonly string _path = Path.Combine(ScratchDirectory, "fuzz-child.vhdx");

    /// <inheritdoc/>
    public override string Name => "vhdx-diff";

    /// <inheritdoc/>
    public override string Description =>
        "differencing VHDX (sparse-encoded): DifferencingVhdxFile.Open (log replay, headers, regions, metadata, BAT) + read every block + close; passes on InvalidDataException, NotSupportedException, IOException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        SparseInput.Decode(input, VhdxFiles.MaxPages).WriteTo(_path);
        try
        {
            using var child = DifferencingVhdxFile.Open(_path, VhdxFiles.ParentLinkage);
            ExtentWalk.ReadAll(child, child.LogicalSectorSize);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException)
        {
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory) => VhdxFiles.WriteSeeds(directory, differencingOnly: true);
}
