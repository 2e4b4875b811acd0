using System.Buffers.Binary;
using System.Numerics;

namespace BackupFuse.BackupImage.Format;

/// <summary>CRC-32C (Castagnoli), the checksum of every header, trailer, index page and stored chunk.</summary>
/// <remarks>
/// <see cref="BitOperations.Crc32C(uint, ulong)"/> uses the SSE4.2 crc32 instruction when the CPU has it and a
/// table otherwise; it is the raw register update, so the standard pre- and post-inversion are applied here.
/// Check value: "123456789" gives 0xE3069283.
/// </remarks>
public static class Crc32C
{
    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(0xFFFFFFFFu, data);

    private static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }
}
