using System.Security.Cryptography;
using BackupFuse.Core;

namespace BackupFuse.Testing;

/// <summary>The SHA-256 of a whole block source, read in pieces (tests comparing or pinning a layer's bytes).</summary>
public static class BlockSourceHash
{
    /// <summary>Upper-case hex SHA-256 of every byte of <paramref name="source"/>, read <paramref name="pieceSize"/> bytes at a time.</summary>
    public static string Sha256(IBlockSource source, int pieceSize = 1 << 20)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[pieceSize];
        for (long at = 0; at < source.Length; at += pieceSize)
        {
            int n = (int)Math.Min(pieceSize, source.Length - at);
            source.Read(at, buffer.AsSpan(0, n));
            sha.AppendData(buffer, 0, n);
        }

        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
