using BackupFuse.Vhdx;

namespace BackupFuse.Fuzz.Targets;

/// <summary>The read-only VHDX parser (src/BackupFuse.Vhdx/VhdxReader.cs) over an in-memory file: open, read every block.</summary>
public sealed class VhdxReaderTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "vhdx";

    /// <inheritdoc/>
    public override string Description =>
        "VHDX file (sparse-encoded) through VhdxReader.Open + read every block; passes on InvalidDataException, NotSupportedException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        var sparse = SparseInput.Decode(input, VhdxFiles.MaxPages);
        try
        {
            using var reader = VhdxReader.Open(new SparseSource(sparse), "fuzz.vhdx");
            ExtentWalk.ReadAll(reader, reader.LogicalSectorSize);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException)
        {
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory) => VhdxFiles.WriteSeeds(directory, differencingOnly: false);

    private sealed class SparseSource(SparseInput input) : BackupFuse.Core.BlockSource
    {
        public override long Length => input.Length;

        public override void Read(long offset, Span<byte> buffer)
        {
            if (offset < 0 || offset > input.Length - buffer.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), $"read {offset}+{buffer.Length} is outside the file");
            }

            input.Read(offset, buffer);
        }
    }
}
