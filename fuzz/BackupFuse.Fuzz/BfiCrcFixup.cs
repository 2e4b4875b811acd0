using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Fuzz;

// Design notes:
// - CRC-32C guards against damage, not against an attacker: a hostile image has correct checksums. Mutated inputs
//   almost never do, so without help AFL would only ever reach "checksum mismatch". FixUp rewrites every checksum the
//   structure makes findable, innermost first (payload CRCs in plaintext index entries, page CRCs in the directory,
//   the directory CRC in the trailer, the trailer CRC, the header CRC), so mutations reach the field checks behind
//   them. Offsets and lengths that do not fit the input are skipped: the reader judges them.
// - The layout is docs/format.md's (header 512 B, trailer 128 B at the end, 24-byte directory entries, 56-byte index
//   entries); encrypted pages are ciphertext, so their entries are left alone.

/// <summary>Recomputes the CRC-32C fields of a .bfi input so that mutations get past the checksums.</summary>
public static class BfiCrcFixup
{
    private const int HeaderSize = 512;
    private const int TrailerSize = 128;
    private const int DirectoryEntrySize = 24;
    private const int IndexEntrySize = 56;

    /// <summary>Rewrites the checksums of <paramref name="b"/> in place.</summary>
    public static void FixUp(byte[] b)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (b.Length < HeaderSize + TrailerSize)
        {
            FixHeader(b);
            return;
        }

        bool encrypted = b[73] != 0;
        int t = b.Length - TrailerSize;
        long directoryOffset = BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(t + 24));
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(t + 32));
        if (directoryOffset >= HeaderSize && count <= (t - directoryOffset) / DirectoryEntrySize && directoryOffset + (count * (long)DirectoryEntrySize) <= t)
        {
            for (int i = 0; i < count; i++)
            {
                var d = b.AsSpan((int)directoryOffset + (i * DirectoryEntrySize), DirectoryEntrySize);
                int stored = BinaryPrimitives.ReadInt32LittleEndian(d[4..]);
                long offset = BinaryPrimitives.ReadInt64LittleEndian(d[8..]);
                if (stored <= 0 || offset < 0 || offset > b.Length - stored)
                {
                    continue;
                }

                var page = b.AsSpan((int)offset, stored);
                if (!encrypted)
                {
                    for (int e = 0; e + IndexEntrySize <= page.Length; e += IndexEntrySize)
                    {
                        var entry = page.Slice(e, IndexEntrySize);
                        long payload = BinaryPrimitives.ReadInt64LittleEndian(entry);
                        int length = BinaryPrimitives.ReadInt32LittleEndian(entry[8..]);
                        if (entry[16] == 1 && length > 0 && payload >= 0 && payload <= b.Length - length)
                        {
                            BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], Crc32C.Compute(b.AsSpan((int)payload, length)));
                        }
                    }
                }

                BinaryPrimitives.WriteUInt32LittleEndian(d[16..], Crc32C.Compute(page));
            }

            var directory = b.AsSpan((int)directoryOffset, (int)(count * DirectoryEntrySize));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(t + 36), Crc32C.Compute(directory));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(t + 124), Crc32C.Compute(b.AsSpan(t, 124)));
        FixHeader(b);
    }

    private static void FixHeader(byte[] b)
    {
        if (b.Length >= HeaderSize)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(508), Crc32C.Compute(b.AsSpan(0, 508)));
        }
    }
}
