using BackupFuse.BackupImage.Crypto;

namespace BackupFuse.Fuzz.Targets;

/// <summary>A .bfi image (header, trailer, index directory, pages, payloads): open, then read every chunk.</summary>
public sealed class BfiTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "bfi";

    /// <inheritdoc/>
    public override string Description =>
        "unencrypted .bfi image: BackupImageFile.Open + read/verify every chunk; passes on InvalidDataException, IOException, PassphraseException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        try
        {
            BfiImages.OpenAndReadAll(input, passphrase: null);
        }
        catch (Exception e) when (e is InvalidDataException or PassphraseException or IOException)
        {
            // The documented outcomes of Open, ReadChunk and VerifyChunk: a damaged image, an encrypted one.
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory) => BfiImages.WriteSeeds(directory, encrypted: false);
}
