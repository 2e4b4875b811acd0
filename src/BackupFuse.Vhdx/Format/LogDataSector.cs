using System.Buffers.Binary;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// A 4 KiB log data sector: "data", the sequence number split into high/low halves around bytes 8-4091 of the
/// target sector. Together with its <see cref="LogDataDescriptor"/> it rebuilds one 4 KiB sector.
/// </summary>
public readonly record struct LogDataSector(ulong SequenceNumber)
{
    /// <summary>Size of a data sector.</summary>
    public const int Size = 4096;

    /// <summary>Bytes of the target sector carried in the data sector.</summary>
    public const int DataLength = 4084;

    /// <summary>The signature bytes "data".</summary>
    public static ReadOnlySpan<byte> Signature => "data"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"data".</summary>
        public const int Signature = 0;

        /// <summary>u32: upper half of the sequence number.</summary>
        public const int SequenceHigh = 4;

        /// <summary>4084 bytes: bytes 8-4091 of the target sector.</summary>
        public const int Data = 8;

        /// <summary>u32: lower half of the sequence number.</summary>
        public const int SequenceLow = 4092;
    }

    /// <summary>Parses a data sector; false for another signature.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogDataSector sector)
    {
        sector = default;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        ulong high = BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.SequenceHigh..]);
        ulong low = BinaryPrimitives.ReadUInt32LittleEndian(source[FieldOffsets.SequenceLow..]);
        sector = new LogDataSector((high << 32) | low);
        return true;
    }

    /// <summary>Writes the sequence fields and signature into a data sector whose data bytes are already in place.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        Signature.CopyTo(destination);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.SequenceHigh..], (uint)(SequenceNumber >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FieldOffsets.SequenceLow..], (uint)SequenceNumber);
    }

    /// <summary>Splits a 4 KiB target sector into a data sector and its descriptor.</summary>
    public static LogDataDescriptor Encode(ReadOnlySpan<byte> target, ulong fileOffset, ulong sequenceNumber, Span<byte> dataSector)
    {
        target[FieldOffsets.Data..FieldOffsets.SequenceLow].CopyTo(dataSector[FieldOffsets.Data..]);
        new LogDataSector(sequenceNumber).Write(dataSector);
        return new LogDataDescriptor(
            BinaryPrimitives.ReadUInt32LittleEndian(target[FieldOffsets.SequenceLow..]),
            BinaryPrimitives.ReadUInt64LittleEndian(target),
            fileOffset,
            sequenceNumber);
    }

    /// <summary>Rebuilds the 4 KiB target sector from a descriptor and its data sector.</summary>
    public static void Decode(in LogDataDescriptor descriptor, ReadOnlySpan<byte> dataSector, Span<byte> target)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(target, descriptor.LeadingBytes);
        dataSector[FieldOffsets.Data..FieldOffsets.SequenceLow].CopyTo(target[FieldOffsets.Data..]);
        BinaryPrimitives.WriteUInt32LittleEndian(target[FieldOffsets.SequenceLow..], descriptor.TrailingBytes);
    }
}
