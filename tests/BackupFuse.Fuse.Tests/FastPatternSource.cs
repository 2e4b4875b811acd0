using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BackupFuse.Core;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// A read-only pattern at memory speed: byte k is byte (k &amp; 7) of the little-endian word
/// (k &gt;&gt; 3) * 0x9E3779B97F4A7C15 + seed. Used for throughput and concurrency checks.
/// </summary>
internal sealed class FastPatternSource(long length, ulong seed = 0x0123456789ABCDEF) : BlockSource
{
    public override long Length { get; } = length;

    public byte ByteAt(long offset) => (byte)(Word(offset >> 3) >> (int)((offset & 7) * 8));

    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        int i = 0;
        while (i < buffer.Length && ((offset + i) & 7) != 0)
        {
            buffer[i] = ByteAt(offset + i);
            i++;
        }

        int words = (buffer.Length - i) / 8;
        var span = MemoryMarshal.Cast<byte, ulong>(buffer.Slice(i, words * 8));
        long w = (offset + i) >> 3;
        for (int k = 0; k < span.Length; k++)
        {
            span[k] = BitConverter.IsLittleEndian ? Word(w + k) : BinaryPrimitives.ReverseEndianness(Word(w + k));
        }

        for (i += words * 8; i < buffer.Length; i++)
        {
            buffer[i] = ByteAt(offset + i);
        }
    }

    private ulong Word(long index) => ((ulong)index * 0x9E3779B97F4A7C15UL) + seed;
}
