using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - A raw (uncompressed, unencrypted) payload written since issue 17 is the chunk's plaintext followed by a table:
//   the CRC-32C of each 4 KiB sector of the chunk, little-endian, the last sector possibly short (docs/format.md 3.1).
//   Its index entry has ChunkFlags.SectorChecksums, and the entry's CRC covers plaintext and table as for any payload.
// - Why: a whole-chunk CRC forces a 4 KiB read to read and check the whole 64 KiB chunk (16x the bytes). With the
//   table, a reader checks just the sectors it reads. A damaged table entry is found as a mismatch of its sector
//   (never wrong bytes); the table has no checksum of its own, the whole-payload CRC covers it on full reads.
// - Compressed and encrypted payloads have no table: they are checked (and inflated, authenticated) whole anyway.
// - Stateless, thread-safe.

/// <summary>The per-sector checksum table of a raw payload.</summary>
public static class SectorChecksums
{
    /// <summary>Bytes of plaintext each checksum covers.</summary>
    public const int SectorSize = 4096;

    /// <summary>Number of sectors (and checksums) of a chunk of <paramref name="chunkLength"/> bytes.</summary>
    public static int SectorCount(int chunkLength) => (chunkLength + SectorSize - 1) / SectorSize;

    /// <summary>Bytes of the table of a chunk of <paramref name="chunkLength"/> bytes.</summary>
    public static int TableLength(int chunkLength) => SectorCount(chunkLength) * sizeof(uint);

    /// <summary>Fills <paramref name="table"/> (<see cref="TableLength"/> bytes) with the checksums of <paramref name="plain"/>.</summary>
    public static void Compute(ReadOnlySpan<byte> plain, Span<byte> table)
    {
        int sectors = SectorCount(plain.Length);
        for (int i = 0; i < sectors; i++)
        {
            int start = i * SectorSize;
            var sector = plain.Slice(start, Math.Min(SectorSize, plain.Length - start));
            BinaryPrimitives.WriteUInt32LittleEndian(table[(i * sizeof(uint))..], Crc32C.Compute(sector));
        }
    }

    /// <summary>
    /// Index of the first sector of <paramref name="sectors"/> (consecutive sectors, the first numbered
    /// <paramref name="firstSector"/>) whose checksum differs from <paramref name="tableSlice"/> (their entries), or -1.
    /// </summary>
    public static int FirstMismatch(ReadOnlySpan<byte> sectors, int firstSector, ReadOnlySpan<byte> tableSlice)
    {
        for (int i = 0; i * SectorSize < sectors.Length; i++)
        {
            var sector = sectors.Slice(i * SectorSize, Math.Min(SectorSize, sectors.Length - (i * SectorSize)));
            if (Crc32C.Compute(sector) != BinaryPrimitives.ReadUInt32LittleEndian(tableSlice[(i * sizeof(uint))..]))
            {
                return firstSector + i;
            }
        }

        return -1;
    }
}
