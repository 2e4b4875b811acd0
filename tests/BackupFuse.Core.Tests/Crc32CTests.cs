using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

/// <summary>
/// The one CRC-32C (Core) against the standard check value and a bytewise table oracle written here, on lengths
/// that take the single chain, the 256-byte and the 8 KiB three-stream paths and their tails.
/// </summary>
public sealed class Crc32CTests
{
    [Fact]
    public void Crc32CMatchesTheStandardCheckValue() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));

    [Fact]
    public void Crc32CCheckValueOnBothPaths()
    {
        var data = "123456789"u8;
        Assert.Equal(0xE3069283u, Crc32C.Compute(data));
        Assert.Equal(0xE3069283u, ~BitwiseOracle(~0u, data));
    }

    [Fact]
    public void Crc32CIntrinsicAndTableAgreeOnRandomData()
    {
        var rng = new Random(3);
        for (int len = 0; len < 300; len += 7)
        {
            var data = new byte[len];
            rng.NextBytes(data);
            Assert.Equal(~BitwiseOracle(~0u, data), Crc32C.Compute(data));
        }
    }

    [Theory]
    [InlineData(767)]
    [InlineData(768)]
    [InlineData(769)]
    [InlineData(3 * 8192)]
    [InlineData((3 * 8192) + 1)]
    [InlineData((3 * 8192) + 775)]
    [InlineData(65536)]
    [InlineData((2 * 3 * 8192) + (3 * 256) + 13)]
    public void InterleavedPathsEqualTheBitwiseOracle(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        Assert.Equal(~BitwiseOracle(~0u, data), Crc32C.Compute(data));
    }

    [Fact]
    public void UpdateFromAnyStateEqualsTheOracle()
    {
        // The three-stream path joins its streams by linearity; that must hold from any register state, which is
        // what ComputeWithZeroedField and split updates feed it.
        var data = new byte[(3 * 8192) + 1000];
        new Random(11).NextBytes(data);
        foreach (int split in new[] { 0, 1, 8, 500, 8192, 20000, data.Length })
        {
            uint state = Crc32C.Update(~0u, data.AsSpan(0, split));
            Assert.Equal(BitwiseOracle(~0u, data.AsSpan(0, split)), state);
            Assert.Equal(BitwiseOracle(state, data.AsSpan(split)), Crc32C.Update(state, data.AsSpan(split)));
        }
    }

    [Fact]
    public void ComputeWithZeroedFieldEqualsCrcOfZeroedCopy()
    {
        var data = new byte[4096];
        new Random(5).NextBytes(data);
        uint viaField = Crc32C.ComputeWithZeroedField(data, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(4), 0);
        Assert.Equal(Crc32C.Compute(data), viaField);
    }

    [Fact]
    public void StampThenVerify_AndAnyFlippedBitIsCaught()
    {
        var data = new byte[65536];
        new Random(7).NextBytes(data);
        Crc32C.Stamp(data, 4);
        Assert.True(Crc32C.Verify(data, 4));
        data[40000] ^= 0x10;
        Assert.False(Crc32C.Verify(data, 4));
    }

    /// <summary>Bitwise reflected CRC-32C register update: the independent oracle.</summary>
    private static uint BitwiseOracle(uint state, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
        {
            state ^= b;
            for (int k = 0; k < 8; k++)
            {
                state = (state & 1) != 0 ? (state >> 1) ^ 0x82F63B78u : state >> 1;
            }
        }

        return state;
    }
}
