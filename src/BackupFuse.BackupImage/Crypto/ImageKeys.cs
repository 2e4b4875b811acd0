using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Crypto;

// Design notes:
// - master = PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 32 bytes) (see PassphraseSource).
//   dataKey  = HKDF-Expand-SHA256(master, "BackupFuse v1 data key" || imageId, 32)
//   checkKey = HKDF-Expand-SHA256(master, "BackupFuse v1 key check" || imageId, 32)
//   keyCheck = HMAC-SHA256(checkKey, "BackupFuse v1 key check value"), stored in the header.
//   In a derived image (merge, format 1.2) its own random file id takes the place of imageId here and in the AADs.
// - Chunk payload: nonce = 'C',0,0,0 || payloadOffset (u64 LE); AAD = imageId || payloadOffset || flags || 'C'.
//   Index page:    nonce = 'P',0,0,0 || pageNumber (u64 LE);    AAD = imageId || pageNumber    || 'P'.
//   A payload's offset is unique in its file and the key is unique per image, so a nonce is never reused. Binding
//   the offset and page number means a payload or page moved elsewhere fails authentication; the index pages are
//   themselves authenticated, so an entry cannot be pointed at another chunk's payload either.
// - AesGcm instances are not shared between threads: a small pool hands one to each concurrent caller.

/// <summary>The keys of one encrypted image and the per-chunk / per-page AES-256-GCM operations.</summary>
internal sealed class ImageKeys : IDisposable
{
    public const int TagSize = 16;
    private const int NonceSize = 12;
    private static readonly byte[] CheckLabel = "BackupFuse v1 key check value"u8.ToArray();

    private readonly byte[] _dataKey;
    private readonly Guid _imageId;
    private readonly ConcurrentBag<AesGcm> _pool = new();

    private ImageKeys(byte[] dataKey, Guid imageId)
    {
        _dataKey = dataKey;
        _imageId = imageId;
    }

    /// <summary>Derives the keys of an image and checks them against the header's key-check value.</summary>
    public static ImageKeys Open(ImageHeader header, PassphraseSource? passphrase, string path)
    {
        if (passphrase == null)
        {
            throw new PassphraseException($"{path} is encrypted: a passphrase is needed");
        }

        byte[] master;
        try
        {
            master = passphrase.DeriveMasterKey(header.KdfSalt, header.KdfIterations);
        }
        catch (PassphraseException e)
        {
            // The source's own message says what is missing; this one says which image needed it.
            throw new PassphraseException($"{path} is encrypted: a passphrase is needed, but the {e.Message}");
        }

        // The key id is the image id, except in a derived image (merge): it holds the same identity as another file, so
        // its keys come from its own file id, else two files would use one (key, nonce) pair for different payloads.
        Guid keyId = DerivedImage.KeyId(header);
        var (dataKey, check) = Derive(master, keyId);
        if (!CryptographicOperations.FixedTimeEquals(check, header.KeyCheck))
        {
            throw new PassphraseException($"wrong passphrase for {path} (from {passphrase.Description})");
        }

        return new ImageKeys(dataKey, keyId);
    }

    /// <summary>
    /// Creates the keys for a new image and returns the key-check value for its header; <paramref name="imageId"/> is the
    /// image's key id (its identity, or a derived image's file id: <see cref="DerivedImage.KeyId"/>).
    /// </summary>
    public static ImageKeys Create(PassphraseSource passphrase, ReadOnlySpan<byte> salt, int iterations, Guid imageId, out byte[] keyCheck)
    {
        byte[] master = passphrase.DeriveMasterKey(salt, iterations);
        var (dataKey, check) = Derive(master, imageId);
        keyCheck = check;
        return new ImageKeys(dataKey, imageId);
    }

    private static (byte[] DataKey, byte[] KeyCheck) Derive(byte[] master, Guid imageId)
    {
        Span<byte> id = stackalloc byte[16];
        imageId.TryWriteBytes(id);
        byte[] dataKey = HKDF.Expand(HashAlgorithmName.SHA256, master, 32, [.. "BackupFuse v1 data key"u8, .. id]);
        byte[] checkKey = HKDF.Expand(HashAlgorithmName.SHA256, master, 32, [.. "BackupFuse v1 key check"u8, .. id]);
        return (dataKey, HMACSHA256.HashData(checkKey, CheckLabel));
    }

    /// <summary>Encrypts a chunk payload in place into <paramref name="output"/> (plaintext.Length + 16 bytes).</summary>
    public void EncryptChunk(long payloadOffset, ChunkFlags flags, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        Span<byte> aad = stackalloc byte[26];
        ChunkContext(payloadOffset, flags, nonce, aad);
        Encrypt(nonce, aad, plaintext, output);
    }

    /// <summary>Decrypts a chunk payload; false when authentication fails.</summary>
    public bool TryDecryptChunk(long payloadOffset, ChunkFlags flags, ReadOnlySpan<byte> stored, Span<byte> plaintext)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        Span<byte> aad = stackalloc byte[26];
        ChunkContext(payloadOffset, flags, nonce, aad);
        return TryDecrypt(nonce, aad, stored, plaintext);
    }

    /// <summary>Encrypts an index page.</summary>
    public void EncryptPage(uint pageNumber, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        Span<byte> aad = stackalloc byte[25];
        PageContext(pageNumber, nonce, aad);
        Encrypt(nonce, aad, plaintext, output);
    }

    /// <summary>Decrypts an index page; false when authentication fails.</summary>
    public bool TryDecryptPage(uint pageNumber, ReadOnlySpan<byte> stored, Span<byte> plaintext)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        Span<byte> aad = stackalloc byte[25];
        PageContext(pageNumber, nonce, aad);
        return TryDecrypt(nonce, aad, stored, plaintext);
    }

    private bool TryDecrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> stored, Span<byte> plaintext)
    {
        if (stored.Length < TagSize || plaintext.Length != stored.Length - TagSize)
        {
            return false;
        }

        var gcm = Rent();
        try
        {
            gcm.Decrypt(nonce, stored[..^TagSize], stored[^TagSize..], plaintext, aad);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            plaintext.Clear();
            return false;
        }
        finally
        {
            _pool.Add(gcm);
        }
    }

    private void ChunkContext(long payloadOffset, ChunkFlags flags, Span<byte> nonce, Span<byte> aad)
    {
        nonce.Clear();
        nonce[0] = (byte)'C';
        BinaryPrimitives.WriteInt64LittleEndian(nonce[4..], payloadOffset);
        _imageId.TryWriteBytes(aad);
        BinaryPrimitives.WriteInt64LittleEndian(aad[16..], payloadOffset);
        aad[24] = (byte)flags;
        aad[25] = (byte)'C';
    }

    private void PageContext(uint pageNumber, Span<byte> nonce, Span<byte> aad)
    {
        nonce.Clear();
        nonce[0] = (byte)'P';
        BinaryPrimitives.WriteInt64LittleEndian(nonce[4..], pageNumber);
        _imageId.TryWriteBytes(aad);
        BinaryPrimitives.WriteInt64LittleEndian(aad[16..], pageNumber);
        aad[24] = (byte)'P';
    }

    private void Encrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var gcm = Rent();
        try
        {
            gcm.Encrypt(nonce, plaintext, output[..plaintext.Length], output.Slice(plaintext.Length, TagSize), aad);
        }
        finally
        {
            _pool.Add(gcm);
        }
    }

    private AesGcm Rent() => _pool.TryTake(out var gcm) ? gcm : new AesGcm(_dataKey, TagSize);

    public void Dispose()
    {
        while (_pool.TryTake(out var gcm))
        {
            gcm.Dispose();
        }
    }
}
