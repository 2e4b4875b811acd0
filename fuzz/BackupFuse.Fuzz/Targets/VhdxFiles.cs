using BackupFuse.Vhdx;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - Seeds of the two VHDX targets, made by the project's writers: differencing children (DifferencingVhdxFile.Create
//   + writes: FULLY_PRESENT and PARTIALLY_PRESENT blocks, sector bitmaps), one copied while its log still holds the
//   last commit (what a crashed daemon leaves), and a synthesized VHDX of a small disk. Stored in the sparse encoding.

/// <summary>Seeds shared by the VHDX targets.</summary>
internal static class VhdxFiles
{
    /// <summary>The parent's DataWriteGuid that every seed child is linked to (the harness's expected linkage).</summary>
    public static readonly Guid ParentLinkage = new("5a1e0000-1911-4f22-9a6b-0c0ffee00019");

    /// <summary>Most pages a decoded input may have (16 MiB files).</summary>
    public const long MaxPages = 4096;

    /// <summary>Writes the differencing and synthesized seeds (sparse-encoded) into <paramref name="directory"/>.</summary>
    public static void WriteSeeds(string directory, bool differencingOnly)
    {
        string work = Path.Combine(directory, ".work");
        Directory.CreateDirectory(work);
        try
        {
            const long size = 8L << 20;
            var parent = new DifferencingParent(size, 512, 4096, new Guid("d15c0000-1911-4f22-9a6b-0c0ffee00019"), ParentLinkage, "base.vhdx");
            string child = Path.Combine(work, "child.vhdx");
            using (var file = DifferencingVhdxFile.Create(child, parent, blockSize: 1 << 20))
            {
                Keep(child, directory, "diff-empty");
                // A whole block (FULLY_PRESENT) and sector runs (PARTIALLY_PRESENT); few non-zero pages, so the seed stays small.
                var data = new byte[1 << 20];
                for (int at = 0; at < data.Length; at += 256 << 10)
                {
                    new Random(at).NextBytes(data.AsSpan(at, 512));
                }

                file.Write(0, data);
                file.Write((3L << 20) + 4096, data.AsSpan(0, 8192));
                file.Write((5L << 20) + 512, data.AsSpan(0, 512));
                file.Flush();
                Keep(child, directory, "diff-log-pending");
            }

            Keep(child, directory, "diff-written");
            if (!differencingOnly)
            {
                var disk = BfiImages.Disk();
                using var vhdx = new SynthesizedVhdx(new ByteSource(disk), new Guid("5e5e0000-1911-4f22-9a6b-0c0ffee00019"));
                var bytes = new byte[vhdx.Length];
                vhdx.Read(0, bytes);
                File.WriteAllBytes(Path.Combine(directory, "synthesized"), SparseInput.Encode(bytes));
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static void Keep(string file, string directory, string name) =>
        File.WriteAllBytes(Path.Combine(directory, name), SparseInput.Encode(File.ReadAllBytes(file)));
}
