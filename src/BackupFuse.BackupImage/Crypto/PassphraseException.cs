namespace BackupFuse.BackupImage.Crypto;

/// <summary>A passphrase is missing or wrong for an encrypted image. The message never contains the passphrase.</summary>
public sealed class PassphraseException : UnauthorizedAccessException
{
    /// <summary>Creates the exception.</summary>
    public PassphraseException(string message)
        : base(message)
    {
    }
}
