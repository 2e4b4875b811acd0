using System.Buffers.Binary;
using System.Security.Cryptography;

namespace BackupFuse.BackupImage.Format;

/// <summary>A SHA-256 of a chunk's plaintext, as a value type that compares cheaply.</summary>
public readonly record struct ChunkHash(ulong A, ulong B, ulong C, ulong D)
{
    /// <summary>Size on disk.</summary>
    public const int Size = 32;

    /// <summary>Hashes <paramref name="plaintext"/> with SHA-256 (SHA-NI when the CPU has it).</summary>
    public static ChunkHash Of(ReadOnlySpan<byte> plaintext)
    {
        Span<byte> h = stackalloc byte[Size];
        SHA256.HashData(plaintext, h);
        return Read(h);
    }

    /// <summary>Reads a stored hash.</summary>
    public static ChunkHash Read(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64BigEndian(b),
        BinaryPrimitives.ReadUInt64BigEndian(b[8..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[16..]),
        BinaryPrimitives.ReadUInt64BigEndian(b[24..]));

    /// <summary>Writes the hash in SHA-256 byte order.</summary>
    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, A);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], B);
        BinaryPrimitives.WriteUInt64BigEndian(b[16..], C);
        BinaryPrimitives.WriteUInt64BigEndian(b[24..], D);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{A:x16}{B:x16}{C:x16}{D:x16}";
}
