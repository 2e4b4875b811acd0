using System.Buffers.Binary;
using System.Numerics;

namespace BackupFuse.Core;

// Design notes:
// - SHA-256 (FIPS 180-4) in managed code, for the identities the read path derives from small inputs: VHDX GUIDs,
//   FAT and exFAT volume serials, short-name suffixes, a chain's parent bindings, folder names. Through
//   System.Security.Cryptography each of those loads OpenSSL (libssl and libcrypto, about 3.7 MiB resident and 4 ms)
//   into a daemon that needs it only for encrypted images; a mount of unencrypted backups now never loads it.
// - Same bytes as any SHA-256 (the tests compare it with System.Security.Cryptography.SHA256 over every length up to
//   a few blocks): the values it derives are stored in images and differencing files and must never change.
// - Not for bulk data (a backup's chunk hashes keep OpenSSL's SHA-NI path, about 10x faster) and not a security
//   boundary of its own (comparisons of secrets still go through CryptographicOperations). Stateless, thread-safe.

/// <summary>SHA-256 of small inputs without loading OpenSSL (see design notes).</summary>
public static class IdentityHash
{
    /// <summary>Length of a hash in bytes.</summary>
    public const int Size = 32;

    private static ReadOnlySpan<uint> K =>
    [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];

    /// <summary>The SHA-256 of <paramref name="data"/>.</summary>
    public static byte[] HashData(ReadOnlySpan<byte> data)
    {
        var hash = new byte[Size];
        HashData(data, hash);
        return hash;
    }

    /// <summary>Writes the SHA-256 of <paramref name="data"/> to the first 32 bytes of <paramref name="destination"/>.</summary>
    public static void HashData(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, Size, nameof(destination));
        Span<uint> state = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        Span<uint> w = stackalloc uint[64];
        long bitLength = (long)data.Length * 8;
        while (data.Length >= 64)
        {
            Compress(state, data[..64], w);
            data = data[64..];
        }

        // The tail, the 0x80 marker and the big-endian bit length: one block, or two when the tail leaves no room.
        Span<byte> last = stackalloc byte[128];
        last.Clear();
        data.CopyTo(last);
        last[data.Length] = 0x80;
        int blocks = data.Length < 56 ? 1 : 2;
        BinaryPrimitives.WriteInt64BigEndian(last[((blocks * 64) - 8)..], bitLength);
        for (int b = 0; b < blocks; b++)
        {
            Compress(state, last.Slice(b * 64, 64), w);
        }

        for (int i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination[(i * 4)..], state[i]);
        }
    }

    private static void Compress(Span<uint> state, ReadOnlySpan<byte> block, Span<uint> w)
    {
        for (int i = 0; i < 16; i++)
        {
            w[i] = BinaryPrimitives.ReadUInt32BigEndian(block[(i * 4)..]);
        }

        for (int i = 16; i < 64; i++)
        {
            uint s0 = BitOperations.RotateRight(w[i - 15], 7) ^ BitOperations.RotateRight(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint s1 = BitOperations.RotateRight(w[i - 2], 17) ^ BitOperations.RotateRight(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }

        uint a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7];
        var k = K;
        for (int i = 0; i < 64; i++)
        {
            uint t1 = h + (BitOperations.RotateRight(e, 6) ^ BitOperations.RotateRight(e, 11) ^ BitOperations.RotateRight(e, 25))
                + ((e & f) ^ (~e & g)) + k[i] + w[i];
            uint t2 = (BitOperations.RotateRight(a, 2) ^ BitOperations.RotateRight(a, 13) ^ BitOperations.RotateRight(a, 22))
                + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}
