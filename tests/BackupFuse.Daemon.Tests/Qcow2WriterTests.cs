using System.Buffers.Binary;
using System.Text.Json;
using BackupFuse.Core;
using BackupFuse.Daemon.Cli;
using BackupFuse.Testing;

namespace BackupFuse.Daemon.Tests;

/// <summary>
/// Qcow2Writer against QEMU as the oracle: qemu-img check is clean, the disk qemu-img reads is the source's bytes, and
/// only clusters with a non-zero byte are stored (an all-zero Data extent, two extents sharing a cluster, a partial last
/// cluster and a partial last sector).
/// </summary>
public sealed class Qcow2WriterTests
{
    private const int Cluster = Qcow2Writer.ClusterSize;

    [SkippableTheory]
    [InlineData((3L << 20) + 777)]       // neither whole sectors nor whole clusters
    [InlineData(3L << 20)]               // whole clusters
    public void QemuReadsTheSourceAndOnlyNonZeroClustersAreStored(long size)
    {
        Prerequisite.Tool("qemu-img", "qemu-utils");
        using var dir = new TempDirectory("bfqcow");
        var source = new SparseMemory(size);
        var rng = new Random(7);
        source.Put(0, Random(rng, 100));                          // start of cluster 0
        source.Put(1 << 20, new byte[128 << 10]);                  // Data, but zeros: not stored
        source.Put((2 << 20) + 4096, Random(rng, 4096));           // two extents in one cluster
        source.Put((2 << 20) + 40960, Random(rng, 4096));
        source.Put(size - 300, Random(rng, 300));                  // the very end (partial sector/cluster)
        source.Put(size / 2, Random(rng, (3 * Cluster) + 5));      // across cluster boundaries

        string qcow = dir["out.qcow2"];
        Qcow2Writer.WriteFile(source, qcow, null, CancellationToken.None);

        var check = ExternalTool.Run("qemu-img", ["check", "-f", "qcow2", qcow]);
        Assert.True(check.ExitCode == 0 && check.StdOut.Contains("No errors were found", StringComparison.Ordinal), check.Output);
        string raw = dir["back.raw"];
        ExternalTool.Check("qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow, raw);
        long rounded = (size + 511) & ~511L;
        var expected = new byte[rounded];
        source.Read(0, expected.AsSpan(0, (int)size));
        Assert.Equal(expected, File.ReadAllBytes(raw));

        // Stored clusters: exactly those with a non-zero byte.
        long nonZero = 0;
        for (long c = 0; c * Cluster < size; c++)
        {
            var span = expected.AsSpan((int)(c * Cluster), (int)Math.Min(Cluster, rounded - (c * Cluster)));
            nonZero += span.IndexOfAnyExcept((byte)0) >= 0 ? 1 : 0;
        }

        var map = JsonDocument.Parse(ExternalTool.Check("qemu-img", "map", "--output=json", "-f", "qcow2", qcow).StdOut);
        long mapped = map.RootElement.EnumerateArray().Where(e => e.GetProperty("data").GetBoolean()).Sum(e => (e.GetProperty("length").GetInt64() + Cluster - 1) / Cluster);
        Assert.Equal(nonZero, mapped);

        // Our header: version 3, 64 KiB clusters, the size in whole sectors.
        var header = File.ReadAllBytes(qcow).AsSpan(0, 104);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32BigEndian(header[4..]));
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32BigEndian(header[20..]));
        Assert.Equal((ulong)rounded, BinaryPrimitives.ReadUInt64BigEndian(header[24..]));
    }

    [Fact]
    public void AnEmptyDiskIsAValidImageWithNoDataAndAPipeIsRefused()
    {
        using var dir = new TempDirectory("bfqcow");
        Qcow2Writer.WriteFile(new ZeroSource(10L << 30), dir["empty.qcow2"], null, CancellationToken.None);
        Assert.True(new FileInfo(dir["empty.qcow2"]).Length <= 4 * Cluster);
        if (ExternalTool.Exists("qemu-img"))
        {
            Assert.Equal(0, ExternalTool.Run("qemu-img", ["check", "-f", "qcow2", dir["empty.qcow2"]]).ExitCode);
        }

        var e = Assert.Throws<CliError>(() => Qcow2Writer.WriteFile(new ZeroSource(1 << 20), "-", null, CancellationToken.None));
        Assert.Contains("standard output", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CliError>(() => Qcow2Writer.WriteFile(new ZeroSource(1 << 20), dir["empty.qcow2"], null, CancellationToken.None));
        Assert.Contains("already exists", e.Message, StringComparison.Ordinal);
    }

    private static byte[] Random(Random rng, int length)
    {
        var b = new byte[length];
        rng.NextBytes(b);
        for (int i = 0; i < b.Length; i += 97)
        {
            b[i] |= 1; // never a cluster of zeros by chance
        }

        return b;
    }

    /// <summary>Bytes in memory whose written runs are Data extents (exactly, not by block) and the rest Unallocated.</summary>
    private sealed class SparseMemory(long length) : BlockSource
    {
        private readonly byte[] _data = new byte[length];
        private readonly SortedList<long, long> _runs = [];

        public override long Length => _data.LongLength;

        public void Put(long offset, byte[] data)
        {
            data.CopyTo(_data.AsSpan((int)offset));
            _runs[offset] = offset + data.Length;
        }

        public override void Read(long offset, Span<byte> buffer) => _data.AsSpan((int)offset, buffer.Length).CopyTo(buffer);

        public override Extent GetExtent(long offset, long maxLength)
        {
            long end = Math.Min(Length, offset + maxLength);
            long nextStart = end;
            foreach (var (start, stop) in _runs)
            {
                if (start <= offset && offset < stop)
                {
                    return new Extent(offset, Math.Min(stop, end) - offset, ExtentKind.Data);
                }

                if (start > offset)
                {
                    nextStart = Math.Min(nextStart, start);
                }
            }

            return new Extent(offset, nextStart - offset, ExtentKind.Unallocated);
        }
    }
}
