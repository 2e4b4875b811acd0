namespace BackupFuse.BackupImage.Format;

/// <summary>How the chunks and index pages of an image are encrypted.</summary>
public enum EncryptionMethod : byte
{
    /// <summary>Not encrypted.</summary>
    None = 0,

    /// <summary>AES-256-GCM per chunk and per index page; key from the passphrase by PBKDF2-HMAC-SHA256 then HKDF-SHA256.</summary>
    Aes256GcmPbkdf2Sha256 = 1,
}
