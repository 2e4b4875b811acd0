using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Log;

/// <summary>One descriptor of a parsed log entry: a zero range, or a data sector with the index of its data sector.</summary>
internal readonly record struct LogDescriptor(bool IsZero, LogZeroDescriptor Zero, LogDataDescriptor Data, int DataSectorIndex);

/// <summary>A log entry read from the ring and validated completely (fields, descriptors, data sectors, CRC-32C).</summary>
internal sealed class LogEntry
{
    private readonly byte[] _raw;
    private readonly int _dataStart;

    private LogEntry(int position, LogEntryHeader header, byte[] raw, int dataStart, List<LogDescriptor> descriptors)
    {
        Position = position;
        Header = header;
        _raw = raw;
        _dataStart = dataStart;
        Descriptors = descriptors;
    }

    /// <summary>Offset of the entry from the start of the log.</summary>
    public int Position { get; }

    /// <summary>The entry header.</summary>
    public LogEntryHeader Header { get; }

    /// <summary>Descriptors in entry order.</summary>
    public IReadOnlyList<LogDescriptor> Descriptors { get; }

    /// <summary>Data sector <paramref name="index"/> (in the order of the data descriptors).</summary>
    public ReadOnlySpan<byte> DataSector(int index) => _raw.AsSpan(_dataStart + (index * LogEntryHeader.SectorSize), LogEntryHeader.SectorSize);

    /// <summary>Parses the entry at <paramref name="position"/> of the ring <paramref name="log"/>; false unless it is fully valid for <paramref name="logGuid"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> log, int position, Guid logGuid, out LogEntry entry)
    {
        entry = null!;
        const int sector = LogEntryHeader.SectorSize;
        if (position < 0 || position % sector != 0 || position >= log.Length
            || !LogEntryHeader.TryRead(log[position..], out var header)
            || header.LogGuid != logGuid || header.EntryLength > log.Length || header.Tail % sector != 0 || header.Tail >= log.Length)
        {
            return false;
        }

        int length = (int)header.EntryLength;
        int descriptorSectors = LogEntryHeader.DescriptorSectors(header.DescriptorCount);
        if ((long)descriptorSectors * sector > length)
        {
            return false;
        }

        var raw = new byte[length];
        int first = Math.Min(length, log.Length - position);
        log.Slice(position, first).CopyTo(raw);
        log[..(length - first)].CopyTo(raw.AsSpan(first));
        if (!LogEntryHeader.VerifyChecksum(raw))
        {
            return false;
        }

        int dataStart = descriptorSectors * sector;
        int dataSectors = (length - dataStart) / sector;
        var descriptors = new List<LogDescriptor>((int)header.DescriptorCount);
        int dataIndex = 0;
        for (int i = 0; i < header.DescriptorCount; i++)
        {
            var d = raw.AsSpan(VhdxLog.DescriptorOffset(i), 32);
            if (LogZeroDescriptor.TryRead(d, out var zero))
            {
                if (zero.SequenceNumber != header.SequenceNumber || zero.FileOffset < 1024 * 1024 || zero.ZeroLength == 0)
                {
                    return false;
                }

                descriptors.Add(new LogDescriptor(true, zero, default, -1));
            }
            else if (LogDataDescriptor.TryRead(d, out var data))
            {
                if (data.SequenceNumber != header.SequenceNumber || data.FileOffset < 1024 * 1024 || dataIndex >= dataSectors
                    || !LogDataSector.TryRead(raw.AsSpan(dataStart + (dataIndex * sector), sector), out var ds) || ds.SequenceNumber != header.SequenceNumber)
                {
                    return false;
                }

                descriptors.Add(new LogDescriptor(false, default, data, dataIndex++));
            }
            else
            {
                return false;
            }
        }

        if (dataIndex != dataSectors)
        {
            return false;
        }

        entry = new LogEntry(position, header, raw, dataStart, descriptors);
        return true;
    }
}
