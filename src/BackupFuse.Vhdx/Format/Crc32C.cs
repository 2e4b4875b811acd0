using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace BackupFuse.Vhdx.Format;

// Design notes:
// - CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, init 0xFFFFFFFF, final XOR 0xFFFFFFFF: the checksum of
//   VHDX headers, region tables and log entries. System.IO.Hashing.Crc32 is the IEEE CRC and must not be used.
// - SSE4.2 crc32 instructions when present (8 bytes per step), else a 256-entry table. Stateless, thread-safe.
// - ComputeWithZeroedField runs the CRC as if a 4-byte field were zero, so a checksum can be verified in place
//   without copying a 64 KiB region table.

/// <summary>CRC-32C (Castagnoli) as used by every VHDX checksum.</summary>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78;
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(~0u, data);

    /// <summary>The CRC-32C of <paramref name="data"/> computed as if the 4 bytes at <paramref name="fieldOffset"/> were zero.</summary>
    public static uint ComputeWithZeroedField(ReadOnlySpan<byte> data, int fieldOffset)
    {
        ReadOnlySpan<byte> zeros = [0, 0, 0, 0];
        uint crc = Update(~0u, data[..fieldOffset]);
        crc = Update(crc, zeros);
        crc = Update(crc, data[(fieldOffset + 4)..]);
        return ~crc;
    }

    /// <summary>Zeroes the checksum field at <paramref name="fieldOffset"/>, computes the CRC over <paramref name="data"/> and stores it there.</summary>
    public static void Stamp(Span<byte> data, int fieldOffset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(data[fieldOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(data[fieldOffset..], Compute(data));
    }

    /// <summary>Whether the checksum stored at <paramref name="fieldOffset"/> matches the rest of <paramref name="data"/>.</summary>
    public static bool Verify(ReadOnlySpan<byte> data, int fieldOffset) =>
        BinaryPrimitives.ReadUInt32LittleEndian(data[fieldOffset..]) == ComputeWithZeroedField(data, fieldOffset);

    /// <summary>Advances a raw (not inverted) CRC state over <paramref name="data"/>.</summary>
    public static uint Update(uint state, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            ulong crc = state;
            while (data.Length >= 8)
            {
                crc = Sse42.X64.Crc32(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            state = (uint)crc;
            foreach (byte b in data)
            {
                state = Sse42.Crc32(state, b);
            }

            return state;
        }

        return UpdateWithTable(state, data);
    }

    /// <summary>The portable path (exposed so tests can check it against the intrinsic one).</summary>
    public static uint UpdateWithTable(uint state, ReadOnlySpan<byte> data)
    {
        var table = Table;
        foreach (byte b in data)
        {
            state = table[(byte)(state ^ b)] ^ (state >> 8);
        }

        return state;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ ReflectedPolynomial : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}
