using System.Buffers.Binary;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - A chain: an incremental and its parent, found by identity in a search directory (ImageCatalog over a scratch
//   directory), checked against each other (identity, disk and chunk size, parent binding), then read as one disk
//   through ChainSource (every extent, both ends of each data extent).
// - Input: u32 LE length of the first image, the first image (the parent, parent.bfi), the rest (the image opened,
//   top.bfi). Both get their checksums fixed up (BfiCrcFixup) as in the bfi target.
// - Documented outcomes of BackupChain.Open and reads: InvalidDataException, IOException (FileNotFoundException:
//   parent not found), PassphraseException.

/// <summary>Two .bfi images opened as a chain (src/BackupFuse.BackupImage/Reading/BackupChain.cs) and read as one disk.</summary>
public sealed class ChainTarget : FuzzTarget
{
    private readonly string _directory = Path.Combine(ScratchDirectory, "chain");

    /// <inheritdoc/>
    public override string Name => "bfi-chain";

    /// <inheritdoc/>
    public override string Description =>
        "parent + incremental .bfi: BackupChain.Open through an ImageCatalog, read every extent; passes on InvalidDataException, IOException, PassphraseException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        Directory.CreateDirectory(_directory);
        int first = input.Length >= 4 ? (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input), (uint)(input.Length - 4)) : 0;
        byte[] parent = input.AsSpan(Math.Min(4, input.Length), first).ToArray();
        byte[] top = input.AsSpan(Math.Min(4, input.Length) + first).ToArray();
        BfiCrcFixup.FixUp(parent);
        BfiCrcFixup.FixUp(top);
        string topPath = Path.Combine(_directory, "top.bfi");
        File.WriteAllBytes(Path.Combine(_directory, "parent.bfi"), parent);
        File.WriteAllBytes(topPath, top);
        try
        {
            using var chain = BackupChain.Open(topPath, new ImageCatalog([_directory]), passphrase: null, pageCacheCapacity: 2);
            using var disk = chain.CreateSource();
            ExtentWalk.ReadAll(disk, 512);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or PassphraseException)
        {
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory)
    {
        string work = Path.Combine(directory, ".images");
        Directory.CreateDirectory(work);
        try
        {
            BfiImages.WriteSeeds(work, encrypted: false);
            byte[] incremental = File.ReadAllBytes(Path.Combine(work, "incremental"));
            foreach (string parent in new[] { "full-deflate", "damaged-bitflip" })
            {
                byte[] p = File.ReadAllBytes(Path.Combine(work, parent));
                var seed = new byte[4 + p.Length + incremental.Length];
                BinaryPrimitives.WriteUInt32LittleEndian(seed, (uint)p.Length);
                p.CopyTo(seed, 4);
                incremental.CopyTo(seed, 4 + p.Length);
                File.WriteAllBytes(Path.Combine(directory, $"chain-{parent}"), seed);
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
