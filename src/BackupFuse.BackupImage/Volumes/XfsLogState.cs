using System.Buffers.Binary;

namespace BackupFuse.BackupImage.Volumes;

// Design notes:
// - Decides whether an XFS internal log is clean (the file system was unmounted and nothing needs replaying), as the
//   kernel's xlog_find_head / xlog_check_unmount_rec do, simplified and conservative: every 512-byte sector of the
//   log carries its cycle number (in the first word, or after the magic in a record header); the head is the first
//   sector whose cycle is lower than the first sector's (or the start, when the whole log has one cycle). The record
//   just before the head must be an unmount record: one log operation with XLOG_UNMOUNT_TRANS, ending exactly at the
//   head (nothing written after it). Anything else, or anything unexpected, is "not clean" (every block is then stored).
// - Reads the whole log once in 1 MiB pieces (a few MiB to 2 GiB; the backup reads far more).

/// <summary>Whether an XFS internal log is clean.</summary>
internal static class XfsLogState
{
    private const uint RecordMagic = 0xFEEDBABE;
    private const int Sector = 512;
    private const byte UnmountTrans = 0x20;

    /// <summary>Null when the log at <paramref name="start"/> (bytes) of <paramref name="length"/> bytes is clean, else why not.</summary>
    public static string? WhyNotClean(VolumeReader read, long start, long length)
    {
        long sectors = length / Sector;
        if (sectors < 2)
        {
            return "the XFS log is too small";
        }

        var cycles = new uint[sectors];
        var isHeader = new bool[sectors];
        byte[] piece = new byte[1 << 20];
        for (long s = 0; s < sectors; s += piece.Length / Sector)
        {
            int n = (int)Math.Min(piece.Length / Sector, sectors - s);
            read(start + (s * Sector), piece.AsSpan(0, n * Sector));
            for (int i = 0; i < n; i++)
            {
                var sec = piece.AsSpan(i * Sector);
                uint w0 = BinaryPrimitives.ReadUInt32BigEndian(sec);
                isHeader[s + i] = w0 == RecordMagic;
                cycles[s + i] = w0 == RecordMagic ? BinaryPrimitives.ReadUInt32BigEndian(sec[4..]) : w0;
            }
        }

        uint first = cycles[0];
        if (first == 0)
        {
            return "the XFS log is empty (never written)";
        }

        long head = 0;
        for (long i = 1; i < sectors; i++)
        {
            if (cycles[i] != first)
            {
                if (cycles[i] != first - 1 && cycles[i] != 0)
                {
                    return $"the XFS log's cycle numbers are not in order at sector {i}";
                }

                head = i;
                break;
            }
        }

        // The last record header before the head (wrapping around the end).
        long at = -1;
        for (long k = 1; k <= Math.Min(sectors, 4096); k++)
        {
            long i = ((head - k) % sectors + sectors) % sectors;
            if (isHeader[i])
            {
                at = i;
                break;
            }
        }

        if (at < 0)
        {
            return "no XFS log record before the log head";
        }

        byte[] header = new byte[Sector];
        read(start + (at * Sector), header);
        uint version = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
        long recordLength = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
        uint ops = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(40));
        uint size = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(320));
        long headerSectors = (version & 2) != 0 && size > 32 * 1024 ? (size + (32 * 1024) - 1) / (32 * 1024) : 1;
        byte[] op = new byte[Sector];
        read(start + ((at + headerSectors) % sectors * Sector), op);
        bool unmount = ops == 1 && (op[9] & UnmountTrans) != 0;
        long end = (at + headerSectors + ((recordLength + Sector - 1) / Sector)) % sectors;
        if (!unmount || end != head)
        {
            return "the XFS log is dirty (mounted, or not cleanly unmounted: run xfs_repair or mount it once)";
        }

        return null;
    }
}
