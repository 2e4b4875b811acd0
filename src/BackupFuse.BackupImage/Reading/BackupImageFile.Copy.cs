using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - For merge (ImageFolder): a chunk's payload as stored, checked (CRC, GCM tag) and decrypted but NOT decompressed,
//   so that a merge copies compressed payloads instead of inflating and deflating every chunk again. The SHA-256 of
//   the plaintext is not checked here: the merged file is verified chunk by chunk (decompressed, hashed) before it
//   becomes visible, which catches a bad source payload as well.

/// <content>Reading a payload for copying into another image.</content>
public sealed partial class BackupImageFile
{
    /// <summary>
    /// Copies the payload of Data entry <paramref name="entry"/> of chunk <paramref name="chunkIndex"/> into
    /// <paramref name="destination"/> (at least <see cref="ChunkEntry.StoredLength"/> bytes), checked and decrypted;
    /// returns its length. The payload is compressed when <c>entry.Flags</c> says so; a raw payload's sector checksums
    /// are left out (the length returned is the chunk's).
    /// </summary>
    /// <exception cref="InvalidDataException">The payload fails its checksum or authentication.</exception>
    internal int ReadPayloadForCopy(ChunkEntry entry, long chunkIndex, Span<byte> destination)
    {
        try
        {
            return ReadPayloadForCopyOnce(entry, chunkIndex, destination);
        }
        catch (InvalidDataException) when (_object.Refetch(entry.PayloadOffset, entry.StoredLength))
        {
            return ReadPayloadForCopyOnce(entry, chunkIndex, destination);
        }
    }

    private int ReadPayloadForCopyOnce(ChunkEntry entry, long chunkIndex, Span<byte> destination)
    {
        var s = destination[..entry.StoredLength];
        _object.ReadExactly(entry.PayloadOffset, s);
        uint crc = Crc32C.Compute(s);
        if (crc != entry.Crc)
        {
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: checksum mismatch (stored 0x{entry.Crc:X8}, computed 0x{crc:X8}): the chunk is corrupt");
        }

        if (entry.Flags == ChunkFlags.SectorChecksums)
        {
            return ChunkLength(chunkIndex); // the plaintext; the writer makes the table of the copy itself
        }

        if ((entry.Flags & ChunkFlags.Encrypted) == 0)
        {
            if ((entry.Flags & ChunkFlags.Compressed) == 0 && entry.StoredLength != ChunkLength(chunkIndex))
            {
                throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: raw chunk holds {entry.StoredLength} bytes, expected {ChunkLength(chunkIndex)}");
            }

            return entry.StoredLength;
        }

        int length = entry.StoredLength - ImageKeys.TagSize;
        byte[] stored = s.ToArray();
        if (!_keys!.TryDecryptChunk(entry.PayloadOffset, entry.Flags, stored, destination[..length]))
        {
            throw new InvalidDataException($"{ChunkPlace(chunkIndex)}: authentication failed: the chunk is corrupt or was tampered with");
        }

        return length;
    }
}
