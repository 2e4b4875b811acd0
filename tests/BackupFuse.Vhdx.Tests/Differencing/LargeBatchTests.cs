using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>Metadata batches larger than one log entry (about 800 sectors) are split in dependency order.</summary>
public sealed class LargeBatchTests
{
    private const long Disk = 200L << 30;
    private const long Stride = 512L << 20; // one write per BAT sector (512 entries of 1 MiB blocks)

    [Fact]
    public void EveryPrefixOfTheSplitCommitIsConsistent()
    {
        int entries = 0;
        for (int crashAt = 1; crashAt <= 8; crashAt++)
        {
            using var kit = new DiffTestKit(Disk, exportBase: false, childBlockSize: 1 << 20, disk: new ZeroSource(Disk));
            var positions = new List<int>();
            var child = kit.CreateChild();
            child.AutoCommitThreshold = int.MaxValue;
            var writes = WriteEverywhere(child);
            int calls = 0;
            child.Log.AfterEntryWritten = () =>
            {
                positions.Add(child.Log.WritePosition);
                if (++calls == crashAt)
                {
                    throw new IOException("simulated crash");
                }
            };
            bool crashed = Record.Exception(child.Flush) is IOException;
            child.SimulateCrash();
            if (!crashed)
            {
                entries = calls;
                Assert.True(entries >= 4, $"only {entries} entries: the batch did not need splitting");
            }
            else
            {
                // Tear the entry the crash interrupted: the file holds exactly the entries before it.
                int start = crashAt == 1 ? 0 : positions[crashAt - 2];
                using var raw = new FileBlockSource(kit.ChildPath, writable: true);
                raw.Write(DifferencingVhdxFormat.LogOffset + start + 200, new byte[] { 0xA5 });
            }

            using var reopened = kit.OpenChild();
            var stats = reopened.GetStatistics(); // walks every BAT entry and bitmap: throws on an inconsistent state
            int present = 0;
            foreach (var (offset, data) in writes)
            {
                var back = new byte[data.Length];
                reopened.Read(offset, back);
                bool isNew = back.AsSpan().SequenceEqual(data);
                Assert.True(isNew || back.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"crash at entry {crashAt}: sector at {offset} is neither old nor new");
                Assert.Equal(isNew ? ExtentKind.Data : ExtentKind.Unallocated, reopened.GetExtent(offset, 512).Kind);
                present += isNew ? 1 : 0;
            }

            Assert.Equal(present * 512L, stats.ChangedBytes);
            if (!crashed)
            {
                Assert.Equal(writes.Count, present);
                break;
            }

            Assert.True(present < writes.Count, $"crash at entry {crashAt}: every write survived a torn final entry");
        }

        Assert.True(entries > 0, "the batch never completed within the crash points tried");
    }

    private static List<(long Offset, byte[] Data)> WriteEverywhere(DifferencingVhdxFile child)
    {
        var rng = new Random(4);
        var writes = new List<(long, byte[])>();
        for (long at = 3 * 512; at < Disk; at += Stride)
        {
            var data = new byte[512];
            rng.NextBytes(data);
            child.Write(at, data);
            writes.Add((at, data));
        }

        return writes;
    }
}
