using System.Buffers;
using BackupFuse.Core;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Log;

// Design notes:
// - The metadata log of a VHDX file opened for writing (MS-VHDX 2.3): Commit turns a batch of 4 KiB sector updates
//   (and optional zero ranges) into ONE log entry and applies it with the spec's order:
//     flush (earlier payload writes and the file size become stable; FlushedFileOffset is the size seen BEFORE that
//     flush, so it is never larger than what is on disk) -> [first commit of a session: new LogGuid in both headers,
//     which also renews FileWriteGuid] -> write the entry -> flush -> write the sectors to their final places -> flush.
//   A crash before the entry's flush loses the batch (it was never acknowledged); a crash after it is repaired by
//   replay on the next open. Either way every structure the batch points at was already on disk (callers write
//   payload data before they commit the metadata that makes it reachable).
// - LogGuid policy: set on the first commit of a session and KEPT while the session lasts (saves two header
//   writes and two flushes per commit); Close() resets it to zero, so a cleanly closed file has an empty log and
//   readers that never replay (libvhdi, 7-Zip) see current data. Every entry's Tail points at itself: each entry is
//   applied and flushed before the next is written, so the newest valid entry alone is the active sequence and
//   replaying it again is harmless (it rewrites sectors with the values they already hold).
// - The ring: entries are written one after the other and wrap around the end of the log area (the entry is split
//   into two writes at the wrap). A new session starts at offset 0 with a new LogGuid; older entries are then dead
//   because their LogGuid differs. Sequence numbers start at 1 and rise by one per entry.
// - Replay (on Open when LogGuid != 0): the spec's active-sequence search (2.3.2) over an in-memory copy of the log
//   area, where a valid sequence moves the scan to the end of that sequence. Entries are validated completely
//   (signature, length, LogGuid, descriptor signatures and sequence numbers, data sector signatures and halves,
//   CRC-32C over the whole entry, targets outside the header section). A file shorter than the head's
//   FlushedFileOffset is corruption (InvalidDataException naming the file). No valid sequence at all means the first
//   entry of the session never completed (a crash right after LogGuid was set): like QEMU, that is an empty log
//   (the spec would call it corrupt, which would make such a crash fatal). The replay renews FileWriteGuid
//   first, writes the sectors in order, extends the file to LastFileOffset, flushes and resets LogGuid to zero.
// - Lives apart (Log/, namespace BackupFuse.Vhdx.Log, as QEMU keeps vhdx-log.c apart) with LogEntry, LogSectorWrite
//   and VhdxHeaderPair: it knows only the on-disk records (Format/) and a writable IBlockSource, nothing of
//   differencing files, so any writer of a VHDX can use it.
// - Not thread-safe: the owner serializes Commit/Close (Differencing/MetadataJournal does it under its flush lock).

/// <summary>Writer and replayer of the metadata log of a VHDX file opened for writing.</summary>
public sealed class VhdxLog
{
    /// <summary>Log sector size.</summary>
    public const int SectorSize = LogEntryHeader.SectorSize;

    private const int Mebibyte = 1024 * 1024;
    private readonly IBlockSource _file;
    private readonly VhdxHeaderPair _headers;
    private int _writePosition;
    private ulong _nextSequence = 1;
    private bool _dataWriteGuidRenewed;

    private VhdxLog(IBlockSource file, VhdxHeaderPair headers)
    {
        _file = file;
        _headers = headers;
        var h = headers.Current;
        if (h.LogVersion != 0)
        {
            throw new InvalidDataException($"{Name}: unknown log version {h.LogVersion}");
        }

        if (h.LogOffset < Mebibyte || h.LogOffset % Mebibyte != 0 || h.LogLength < Mebibyte || h.LogLength % Mebibyte != 0
            || h.LogLength > int.MaxValue || (long)h.LogOffset + h.LogLength > file.Length)
        {
            throw new InvalidDataException($"{Name}: the log at {h.LogOffset}+{h.LogLength} is misaligned, empty or outside the file ({file.Length} bytes)");
        }

        LogOffset = (long)h.LogOffset;
        LogLength = (int)h.LogLength;
    }

    /// <summary>Opens the log of a writable file and replays it when the header says it is not empty.</summary>
    public static VhdxLog Open(IBlockSource file, string name)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.CanWrite)
        {
            throw new NotSupportedException($"{name}: the VHDX log needs a writable file");
        }

        var log = new VhdxLog(file, VhdxHeaderPair.Read(file, name));
        if (log.Header.LogGuid != Guid.Empty)
        {
            log.Replay();
        }

        return log;
    }

    /// <summary>The file's name, for messages.</summary>
    public string Name => _headers.Name;

    /// <summary>The current header.</summary>
    public VhdxHeader Header => _headers.Current;

    /// <summary>The header slots.</summary>
    public VhdxHeaderPair Headers => _headers;

    /// <summary>File offset of the log area.</summary>
    public long LogOffset { get; }

    /// <summary>Length of the log area.</summary>
    public int LogLength { get; }

    /// <summary>How many entries Open replayed (0 when the log was empty).</summary>
    public int ReplayedEntries { get; private set; }

    /// <summary>The most data sectors one entry can carry (without zero descriptors): 254 for a 1 MiB log.</summary>
    public int MaxSectorsPerEntry
    {
        get
        {
            int sectors = LogLength / SectorSize;
            int n = sectors - 1;
            while (n > 0 && LogEntryHeader.DescriptorSectors((uint)n) + n > sectors)
            {
                n--;
            }

            return n;
        }
    }

    /// <summary>Offset in the log where the next entry goes (for tests that tear it).</summary>
    internal int WritePosition => _writePosition;

    /// <summary>Test hook: runs after an entry is written and flushed, before it is applied (throw to simulate a crash).</summary>
    internal Action? AfterEntryWritten { get; set; }

    /// <summary>
    /// Starts a write session: renews FileWriteGuid (and DataWriteGuid when <paramref name="userVisible"/>) in both
    /// headers, once per session, before the caller changes anything in the file.
    /// </summary>
    public void BeginSession(bool userVisible)
    {
        if (!_headers.SessionStarted || (userVisible && !_dataWriteGuidRenewed))
        {
            _headers.Update(h => h, newDataWriteGuid: userVisible && !_dataWriteGuidRenewed);
            _dataWriteGuidRenewed |= userVisible;
        }
    }

    /// <summary>
    /// Writes <paramref name="sectors"/> (4 KiB each, 4 KiB aligned) and <paramref name="zeros"/> as one log entry,
    /// then applies them. Zero ranges are applied before the sectors. Throws ArgumentException when the batch does
    /// not fit in one entry (see <see cref="MaxSectorsPerEntry"/>).
    /// </summary>
    public void Commit(IReadOnlyList<LogSectorWrite> sectors, IReadOnlyList<LogZeroRange>? zeros = null)
    {
        ArgumentNullException.ThrowIfNull(sectors);
        zeros ??= [];
        long maxEnd = 0;
        foreach (var s in sectors)
        {
            CheckTarget(s.FileOffset, SectorSize);
            if (s.Data.Length != SectorSize)
            {
                throw new ArgumentException($"log sector updates are {SectorSize} bytes, not {s.Data.Length}", nameof(sectors));
            }

            maxEnd = Math.Max(maxEnd, s.FileOffset + SectorSize);
        }

        foreach (var z in zeros)
        {
            CheckTarget(z.FileOffset, z.Length);
            maxEnd = Math.Max(maxEnd, z.FileOffset + z.Length);
        }

        int count = sectors.Count + zeros.Count;
        int descriptorSectors = LogEntryHeader.DescriptorSectors((uint)count);
        long entryLength = (long)(descriptorSectors + sectors.Count) * SectorSize;
        if (entryLength > LogLength)
        {
            throw new ArgumentException($"{Name}: a log entry of {entryLength} bytes does not fit in the {LogLength}-byte log; commit fewer sectors", nameof(sectors));
        }

        // 1. Everything written so far (payload data, file growth) becomes stable before the entry that may point at it.
        long stableLength = _file.Length;
        _file.Flush();

        // 2. The first entry of a session needs a LogGuid in both headers (this also renews FileWriteGuid).
        if (Header.LogGuid == Guid.Empty)
        {
            _headers.Update(h => h with { LogGuid = Guid.NewGuid() });
            _writePosition = 0;
        }

        ulong sequence = _nextSequence;
        var entry = ArrayPool<byte>.Shared.Rent((int)entryLength);
        try
        {
            var span = entry.AsSpan(0, (int)entryLength);
            span.Clear();
            new LogEntryHeader(
                (uint)entryLength,
                (uint)_writePosition,
                sequence,
                (uint)count,
                Header.LogGuid,
                (ulong)BlockAlignment.AlignDown(stableLength, Mebibyte),
                (ulong)BlockAlignment.AlignUp(Math.Max(stableLength, maxEnd), Mebibyte)).Write(span);
            int d = 0;
            foreach (var z in zeros)
            {
                new LogZeroDescriptor((ulong)z.Length, (ulong)z.FileOffset, sequence).Write(span[DescriptorOffset(d++)..]);
            }

            for (int i = 0; i < sectors.Count; i++)
            {
                var dataSector = span.Slice((descriptorSectors + i) * SectorSize, SectorSize);
                LogDataSector.Encode(sectors[i].Data.Span, (ulong)sectors[i].FileOffset, sequence, dataSector).Write(span[DescriptorOffset(d++)..]);
            }

            LogEntryHeader.StampChecksum(span);

            // 3. The entry, wrapped at the end of the ring, then flushed.
            int first = (int)Math.Min(entryLength, LogLength - _writePosition);
            _file.Write(LogOffset + _writePosition, span[..first]);
            if (first < span.Length)
            {
                _file.Write(LogOffset, span[first..]);
            }

            _file.Flush();
            _nextSequence++;
            _writePosition = (int)((_writePosition + entryLength) % LogLength);
            AfterEntryWritten?.Invoke();

            // 4. Apply to the final locations, then flush.
            foreach (var z in zeros)
            {
                WriteZeros(z.FileOffset, z.Length);
            }

            foreach (var s in sectors)
            {
                _file.Write(s.FileOffset, s.Data.Span);
            }

            _file.Flush();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(entry);
        }
    }

    /// <summary>Empties the log (LogGuid = 0 in both headers) if this session used it. Call at clean close.</summary>
    public void Close()
    {
        if (Header.LogGuid != Guid.Empty)
        {
            _file.Flush();
            _headers.Update(h => h with { LogGuid = Guid.Empty });
        }
    }

    /// <summary>File offset of descriptor <paramref name="index"/> inside an entry (126 in the first sector, 128 in each next).</summary>
    internal static int DescriptorOffset(int index) => index < LogEntryHeader.DescriptorsInFirstSector
        ? LogEntryHeader.Size + (index * 32)
        : (SectorSize * (1 + ((index - LogEntryHeader.DescriptorsInFirstSector) / 128))) + (32 * ((index - LogEntryHeader.DescriptorsInFirstSector) % 128));

    /// <summary>
    /// The active sequence of <paramref name="log"/> (the whole log area) for <paramref name="logGuid"/>, tail first, or
    /// an empty list when there is none (MS-VHDX 2.3.2).
    /// </summary>
    internal static List<LogEntry> FindActiveSequence(ReadOnlySpan<byte> log, Guid logGuid)
    {
        var candidate = new List<LogEntry>();
        int length = log.Length;
        int currentTail = 0;
        int oldTail = 0;
        while (true)
        {
            var sequence = new List<LogEntry>();
            int position = currentTail;
            long covered = 0;
            while (covered < length && LogEntry.TryParse(log, position, logGuid, out var entry)
                && (sequence.Count == 0 || entry.Header.SequenceNumber == sequence[^1].Header.SequenceNumber + 1))
            {
                sequence.Add(entry);
                covered += entry.Header.EntryLength;
                position = (int)((position + entry.Header.EntryLength) % length);
            }

            // Valid when the head's tail is the start of one of the sequence's entries.
            int tailIndex = sequence.Count == 0 ? -1 : sequence.FindIndex(e => e.Position == sequence[^1].Header.Tail);
            if (tailIndex >= 0 && sequence[^1].Header.SequenceNumber > (candidate.Count == 0 ? 0 : candidate[^1].Header.SequenceNumber))
            {
                candidate = sequence.GetRange(tailIndex, sequence.Count - tailIndex);
            }

            currentTail = tailIndex < 0 ? currentTail + SectorSize : position;
            if (currentTail >= length)
            {
                currentTail -= length;
            }

            // Stop when the scan wrapped, or a sequence went all the way round the ring.
            if (currentTail < oldTail || (tailIndex >= 0 && covered >= length))
            {
                return candidate;
            }

            oldTail = currentTail;
        }
    }

    private void Replay()
    {
        var h = Header;
        var buffer = ArrayPool<byte>.Shared.Rent(LogLength);
        List<LogEntry> active;
        try
        {
            var log = buffer.AsSpan(0, LogLength);
            _file.Read(LogOffset, log);
            active = FindActiveSequence(log, h.LogGuid);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (active.Count == 0)
        {
            // No entry with this LogGuid was ever completed: the session set LogGuid and crashed before or while
            // writing its first entry, so nothing was applied either. The spec calls this corrupt; QEMU (and we)
            // treat it as an empty log, because refusing would make every such crash fatal.
            _headers.Update(x => x with { LogGuid = Guid.Empty });
            return;
        }

        var head = active[^1].Header;
        if ((ulong)_file.Length < head.FlushedFileOffset)
        {
            throw new InvalidDataException($"{Name}: the file ({_file.Length} bytes) is shorter than the {head.FlushedFileOffset} bytes its log says were stable: it was truncated");
        }

        _headers.Update(x => x); // new FileWriteGuid before the first change
        var sector = new byte[SectorSize];
        foreach (var entry in active)
        {
            foreach (var descriptor in entry.Descriptors)
            {
                if (descriptor.IsZero)
                {
                    WriteZeros((long)descriptor.Zero.FileOffset, (long)descriptor.Zero.ZeroLength);
                }
                else
                {
                    LogDataSector.Decode(descriptor.Data, entry.DataSector(descriptor.DataSectorIndex), sector);
                    _file.Write((long)descriptor.Data.FileOffset, sector);
                }
            }
        }

        long last = BlockAlignment.AlignUp((long)head.LastFileOffset, Mebibyte);
        if (_file.Length < last)
        {
            _file.Write(last - SectorSize, new byte[SectorSize]);
        }

        _file.Flush();
        _headers.Update(x => x with { LogGuid = Guid.Empty });
        ReplayedEntries = active.Count;
    }

    private void CheckTarget(long fileOffset, long length)
    {
        if (fileOffset < Mebibyte || fileOffset % SectorSize != 0 || length <= 0 || length % SectorSize != 0
            || (fileOffset < LogOffset + LogLength && LogOffset < fileOffset + length))
        {
            throw new ArgumentException($"{Name}: log target {fileOffset}+{length} is unaligned, in the header section or in the log");
        }
    }

    private void WriteZeros(long fileOffset, long length)
    {
        var zeros = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            Array.Clear(zeros);
            while (length > 0)
            {
                int n = (int)Math.Min(length, 64 * 1024);
                _file.Write(fileOffset, zeros.AsSpan(0, n));
                fileOffset += n;
                length -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }
}
