using System.Buffers.Binary;
using BackupFuse.BackupImage.Crypto;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - The same reading as the bfi target, with the harness's fixed passphrase, over images written encrypted: key
//   derivation and check, GCM on pages and payloads. PassphraseSource caches the derived key per (salt, iterations),
//   so only inputs with a new salt pay PBKDF2. The header may legally ask for up to 50,000,000 iterations (a
//   deliberate bound, seconds of CPU): inputs asking for more than the seeds' 200,000 are skipped, else every such
//   mutation would be a "hang" that only measures PBKDF2.

/// <summary>An encrypted .bfi image, opened with the right passphrase, every chunk read.</summary>
public sealed class EncryptedBfiTarget : FuzzTarget
{
    private const int MaxIterations = 200_000;

    /// <inheritdoc/>
    public override string Name => "bfi-encrypted";

    /// <inheritdoc/>
    public override string Description =>
        "encrypted .bfi image with the harness passphrase: open + read/verify every chunk; passes on InvalidDataException, IOException, PassphraseException";

    /// <inheritdoc/>
    public override void Run(byte[] input)
    {
        if (input.Length >= 80 && BinaryPrimitives.ReadInt32LittleEndian(input.AsSpan(76)) > MaxIterations)
        {
            return;
        }

        try
        {
            BfiImages.OpenAndReadAll(input, BfiImages.Passphrase);
        }
        catch (Exception e) when (e is InvalidDataException or PassphraseException or IOException)
        {
        }
    }

    /// <inheritdoc/>
    public override void WriteSeeds(string directory) => BfiImages.WriteSeeds(directory, encrypted: true);
}
