using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The persisted presence map of the whole cache: one record per present block (image id, object length, block
//   number, block length, CRC-32C of every sector), oldest use first, so a reopened cache has the same LRU order.
// - Layout (little-endian): "BFCACHE1", version u32 = 1, block size u32, sector size u32, record count u32; then per
//   record: id (16), object length i64, block i64, block length i32, sector count i32, sector CRCs u32 each; then a
//   CRC-32C of everything before. Any mismatch (magic, version, geometry, length, CRC) makes the whole file unusable:
//   the cache then starts empty (and removes its data files), it never guesses.
// - Written whole to "index.tmp", fsync'ed, renamed over "index" (ImageCache.Flush): a crash leaves the old or the
//   new file, never a mix.
// - Pure serialization: no I/O here, no state.

/// <summary>Serializes the cache's presence map.</summary>
internal static class CacheIndexFile
{
    /// <summary>Name of the index in the cache directory.</summary>
    public const string Name = "index";

    /// <summary>Name of the index being written.</summary>
    public const string TempName = "index.tmp";

    private const int Version = 1;
    private const int HeaderSize = 24;
    private static ReadOnlySpan<byte> Magic => "BFCACHE1"u8;

    /// <summary>One present block.</summary>
    public readonly record struct Record(Guid Id, long ObjectLength, long Block, int BlockLength, uint[] SectorCrcs);

    /// <summary>The file's bytes for <paramref name="records"/> (oldest use first).</summary>
    public static byte[] Serialize(int blockSize, IReadOnlyList<Record> records)
    {
        long size = HeaderSize + 4 + records.Sum(r => 40L + (4L * r.SectorCrcs.Length));
        var b = new byte[size];
        Magic.CopyTo(b);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(12), blockSize);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(16), ImageCacheOptions.SectorSize);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(20), records.Count);
        int at = HeaderSize;
        foreach (var r in records)
        {
            r.Id.TryWriteBytes(b.AsSpan(at, 16));
            BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(at + 16), r.ObjectLength);
            BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(at + 24), r.Block);
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(at + 32), r.BlockLength);
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(at + 36), r.SectorCrcs.Length);
            at += 40;
            foreach (uint crc in r.SectorCrcs)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), crc);
                at += 4;
            }
        }

        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), Crc32C.Compute(b.AsSpan(0, at)));
        return b;
    }

    /// <summary>The records of <paramref name="b"/>, or null (with the reason) when the file is not a valid index for <paramref name="blockSize"/>.</summary>
    public static List<Record>? TryParse(ReadOnlySpan<byte> b, int blockSize, out string? problem)
    {
        problem = null;
        if (b.Length < HeaderSize + 4 || !b[..8].SequenceEqual(Magic))
        {
            problem = "not a cache index";
            return null;
        }

        if (Crc32C.Compute(b[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(b[^4..]))
        {
            problem = "checksum mismatch";
            return null;
        }

        if (BinaryPrimitives.ReadInt32LittleEndian(b[8..]) != Version
            || BinaryPrimitives.ReadInt32LittleEndian(b[12..]) != blockSize
            || BinaryPrimitives.ReadInt32LittleEndian(b[16..]) != ImageCacheOptions.SectorSize)
        {
            problem = "written with another version or block size";
            return null;
        }

        int count = BinaryPrimitives.ReadInt32LittleEndian(b[20..]);
        var records = new List<Record>(Math.Max(0, Math.Min(count, 1 << 20)));
        int at = HeaderSize;
        int end = b.Length - 4;
        for (int i = 0; i < count; i++)
        {
            if (at + 40 > end)
            {
                problem = "truncated";
                return null;
            }

            var id = new Guid(b.Slice(at, 16));
            long objectLength = BinaryPrimitives.ReadInt64LittleEndian(b[(at + 16)..]);
            long block = BinaryPrimitives.ReadInt64LittleEndian(b[(at + 24)..]);
            int blockLength = BinaryPrimitives.ReadInt32LittleEndian(b[(at + 32)..]);
            int sectors = BinaryPrimitives.ReadInt32LittleEndian(b[(at + 36)..]);
            at += 40;
            if (sectors < 1 || sectors > blockSize / ImageCacheOptions.SectorSize || at + (4L * sectors) > end)
            {
                problem = "invalid record";
                return null;
            }

            var crcs = new uint[sectors];
            for (int s = 0; s < sectors; s++)
            {
                crcs[s] = BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
                at += 4;
            }

            records.Add(new Record(id, objectLength, block, blockLength, crcs));
        }

        if (at != end)
        {
            problem = "trailing bytes";
            return null;
        }

        return records;
    }
}
