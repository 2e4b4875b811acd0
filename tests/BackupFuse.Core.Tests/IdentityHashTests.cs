using System.Security.Cryptography;
using BackupFuse.Core;

namespace BackupFuse.Core.Tests;

/// <summary>IdentityHash is SHA-256: the values it derives are stored in images and must never change.</summary>
public sealed class IdentityHashTests
{
    [Fact]
    public void KnownAnswers_OfFips180()
    {
        Assert.Equal("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", Convert.ToHexString(IdentityHash.HashData([])));
        Assert.Equal("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", Convert.ToHexString(IdentityHash.HashData("abc"u8)));
        Assert.Equal(
            "248D6A61D20638B8E5C026930C3E6039A33CE45964FF2167F6ECEDD419DB06C1",
            Convert.ToHexString(IdentityHash.HashData("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"u8)));
    }

    [Fact]
    public void EveryLength_UpToFourBlocks_MatchesTheSystemSha256()
    {
        // Every way the tail can fall: empty, under 56 bytes (one padding block), 56-63 (two), whole blocks.
        var random = new Random(17);
        var data = new byte[300];
        random.NextBytes(data);
        for (int length = 0; length <= data.Length; length++)
        {
            var input = data.AsSpan(0, length);
            Assert.True(SHA256.HashData(input).AsSpan().SequenceEqual(IdentityHash.HashData(input)), $"length {length}");
        }
    }

    [Fact]
    public void LongInput_MatchesTheSystemSha256_AndWritesOnly32Bytes()
    {
        var data = new byte[100_003];
        new Random(5).NextBytes(data);
        var destination = new byte[40];
        destination.AsSpan().Fill(0xEE);
        IdentityHash.HashData(data, destination);
        Assert.Equal(SHA256.HashData(data), destination[..32]);
        Assert.All(destination[32..], b => Assert.Equal(0xEE, b));
        Assert.Throws<ArgumentOutOfRangeException>(() => IdentityHash.HashData(data, new byte[31]));
    }
}
