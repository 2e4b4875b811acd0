using System.Diagnostics;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Volumes;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - A volume backup reads the file system's own allocation structures (superblock, group descriptors, bitmaps, AG
//   headers, $Bitmap/$MFT) from the source, which may be damaged or hostile. The input (sparse encoding) is the volume;
//   FileSystemProbe and UsedBlocks.TryBuild read it through a VolumeReader, as BackupWriter does. The volume is a
//   virtual length (the decoded length, at least MinimumLength) with zeros where no page is given: a real small file
//   system is mostly zeros, and XFS needs 300 MiB.
// - Documented outcome: a map, or null with a reason; TryBuild itself turns inconsistencies into a reason. Any
//   exception is a crash. A map must cover the whole volume.
// - Seeds: mkfs.* on a scratch file at fuzz time (e2fsprogs, xfsprogs, ntfs-3g: scripts/install-deps.sh --test);
//   none when the tool is missing.

/// <summary>The used-block map parser of one file system kind.</summary>
public abstract class VolumeTarget : FuzzTarget
{
    /// <summary>The file system whose parser this target drives.</summary>
    protected abstract FileSystemKind Kind { get; }

    /// <summary>Smallest volume length (the rest reads as zeros).</summary>
    protected abstract long MinimumLength { get; }

    /// <summary>mkfs command and arguments (the image path is appended) for the seeds.</summary>
    protected abstract string[] MakeFileSystem { get; }

    /// <summary>Size of the seed volume.</summary>
    protected virtual long SeedLength => MinimumLength;

    /// <inheritdoc/>
    public override string Description =>
        $"{FileSystemProbe.Describe(Kind)} volume (sparse-encoded): FileSystemProbe + UsedBlocks.TryBuild; passes on a map or null with a reason, never an exception";

    /// <summary>Clears what the parser never reads from a fresh file system, so that the seed stays small.</summary>
    protected virtual void PrepareSeed(byte[] volume)
    {
    }

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        var sparse = SparseInput.Decode(input, long.MaxValue / SparseInput.PageSize);
        long length = Math.Max(sparse.Length, MinimumLength);
        VolumeReader read = (offset, buffer) =>
        {
            if (offset < 0 || offset > length - buffer.Length)
            {
                throw new IOException($"read {offset}+{buffer.Length} is outside the volume");
            }

            sparse.Read(offset, buffer);
        };
        _ = FileSystemProbe.Probe(read, length);
        var map = UsedBlocks.TryBuild(Kind, read, length, out string reason);
        if (Environment.GetEnvironmentVariable("FUZZ_VERBOSE") == "1")
        {
            Console.Error.WriteLine(map == null ? $"{Name}: no map: {reason}" : $"{Name}: map of {map.BlockCount} blocks, {map.UsedBlocks} used");
        }

        if (map == null && string.IsNullOrWhiteSpace(reason))
        {
            throw new FuzzFailureException("no map and no reason");
        }

        if (map != null && map.VolumeLength != length)
        {
            throw new FuzzFailureException($"the map is of a {map.VolumeLength}-byte volume, the volume has {length} bytes");
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        string image = Path.Combine(directory, ".volume");
        try
        {
            using (var f = File.Create(image))
            {
                f.SetLength(SeedLength);
            }

            var start = new ProcessStartInfo(MakeFileSystem[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in MakeFileSystem.Skip(1).Append(image))
            {
                start.ArgumentList.Add(a);
            }

            Process p;
            try
            {
                p = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                Console.Error.WriteLine($"{Name}: {MakeFileSystem[0]} is not installed: no seeds");
                return;
            }

            using (p)
            {
                p.StandardOutput.ReadToEnd();
                string err = p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode != 0)
                {
                    throw new IOException($"{MakeFileSystem[0]} failed: {err}");
                }
            }

            byte[] bytes = File.ReadAllBytes(image);
            PrepareSeed(bytes);
            File.WriteAllBytes(Path.Combine(directory, "mkfs"), SparseInput.Encode(bytes));
        }
        finally
        {
            File.Delete(image);
        }
    }
}
