using System.Buffers.Binary;

namespace BackupFuse.IntegrationTests;

/// <summary>Reads the partitions of a GPT disk file the way a test needs them (the file may be on a FUSE mount).</summary>
internal static class GptDisk
{
    /// <summary>Offset and length of GPT partition 1, read from the entry array at LBA 2.</summary>
    public static (long Offset, long Length) FirstPartition(string disk)
    {
        using var f = File.OpenRead(disk);
        byte[] entry = new byte[128];
        f.Position = 2 * 512;
        f.ReadExactly(entry);
        long first = BinaryPrimitives.ReadInt64LittleEndian(entry.AsSpan(32));
        long last = BinaryPrimitives.ReadInt64LittleEndian(entry.AsSpan(40));
        return (first * 512, (last - first + 1) * 512);
    }

    /// <summary>Copies <paramref name="length"/> bytes of <paramref name="disk"/> from <paramref name="offset"/> into <paramref name="output"/>.</summary>
    public static string Extract(string disk, long offset, long length, string output)
    {
        using var input = File.OpenRead(disk);
        using var o = File.Create(output);
        input.Position = offset;
        byte[] buffer = new byte[1 << 20];
        for (long done = 0; done < length;)
        {
            int n = input.Read(buffer, 0, (int)Math.Min(buffer.Length, length - done));
            Assert.True(n > 0, $"{disk} ended at {offset + done}");
            o.Write(buffer, 0, n);
            done += n;
        }

        return output;
    }

    /// <summary>Partition 1 of <paramref name="disk"/> copied into <paramref name="output"/>.</summary>
    public static string ExtractFirstPartition(string disk, string output)
    {
        var (offset, length) = FirstPartition(disk);
        return Extract(disk, offset, length, output);
    }
}
