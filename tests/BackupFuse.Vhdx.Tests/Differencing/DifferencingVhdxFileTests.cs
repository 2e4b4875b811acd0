using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;
using BackupFuse.Vhdx.Format;

namespace BackupFuse.Vhdx.Tests.Differencing;

public sealed class DifferencingVhdxFileTests
{
    private const long MiB = DiffTestKit.MiB;

    [Fact]
    public void NewChildIsEmptyAndWellFormed()
    {
        using var kit = new DiffTestKit((20 * MiB) + 4096);
        using (var child = kit.CreateChild())
        {
            Assert.Equal(kit.Base.Layout.VirtualDiskSize, child.Length);
            Assert.Equal(new Extent(0, child.Length, ExtentKind.Unallocated), child.GetExtent(0, long.MaxValue));
            Assert.Equal(kit.Base.DataWriteGuid, child.ParentLinkage);
            Assert.Equal(kit.Base.Layout.VirtualDiskId, child.VirtualDiskId);
            Assert.Equal(0, child.GetStatistics().AllocatedBlocks);
        }

        using var reader = VhdxReader.Open(new FileBlockSource(kit.ChildPath), ownsFile: true);
        Assert.True(reader.FileParameters.HasParent);
        Assert.False(reader.FileParameters.LeaveBlocksAllocated);
        Assert.Equal(Guid.Empty, reader.Header.LogGuid);
        Assert.Equal(kit.Base.DataWriteGuid.ToString("B"), reader.ParentLocator![ParentLocator.ParentLinkageKey]);
        Assert.Equal("base.vhdx", reader.ParentLocator[ParentLocator.RelativePathKey]);
        Assert.Equal(0, new FileInfo(kit.ChildPath).Length % MiB);
    }

    [Fact]
    public void OpenRefusesWrongParentExistingFileAndNonDifferencingFiles()
    {
        using var kit = new DiffTestKit(8 * MiB);
        kit.CreateChild().Dispose();
        var e = Assert.Throws<InvalidDataException>(() => DifferencingVhdxFile.Open(kit.ChildPath, Guid.NewGuid()));
        Assert.Contains(kit.ChildPath, e.Message);
        Assert.Contains("parent", e.Message);
        Assert.Throws<InvalidDataException>(() => DifferencingVhdxFile.Open(kit.ChildPath, kit.Parent.DataWriteGuid, kit.Parent.VirtualSize + 512));
        Assert.Throws<IOException>(() => kit.CreateChild());
        var notDiff = Assert.Throws<InvalidDataException>(() => DifferencingVhdxFile.Open(kit.BasePath, kit.Parent.DataWriteGuid));
        Assert.Contains("HasParent", notDiff.Message);
        Assert.Empty(Directory.GetFiles(kit.Dir.Path, "*.tmp"));
    }

    [Fact]
    public void WritesReadBackAcrossReopenWithBlockStates()
    {
        using var kit = new DiffTestKit(24 * MiB);
        var model = new byte[kit.Parent.VirtualSize];
        var present = new bool[model.Length / 512];
        var rng = new Random(11);
        void Write(DifferencingVhdxFile child, long offset, int length)
        {
            var data = new byte[length];
            rng.NextBytes(data);
            child.Write(offset, data);
            data.CopyTo(model, offset);
            Array.Fill(present, true, (int)(offset / 512), length / 512);
        }

        using (var child = kit.CreateChild())
        {
            Write(child, 0, 512);                                  // partial block 0
            Write(child, (2 * MiB) - 4096, 8192);                  // spans blocks 0 and 1
            Write(child, 4 * MiB, (int)(2 * MiB));                 // full block 2
            Write(child, (6 * MiB) + 1024, 4096 * 3);              // partial block 3
            Write(child, 6 * MiB, 512);
            for (long s = 0; s < 2 * MiB; s += 64 * 1024)
            {
                Write(child, (8 * MiB) + s, 64 * 1024);            // block 4 filled piecewise -> promoted
            }

            Check(child);
            child.Flush();
            Write(child, 10 * MiB, 1024);                          // not flushed: Dispose must commit it
            var stats = child.GetStatistics();
            Assert.Equal(2, stats.FullyPresentBlocks);
            Assert.Equal(4, stats.PartiallyPresentBlocks); // blocks 0, 1, 3 and 5
            Assert.Equal(1, stats.SectorBitmapBlocks);
            Assert.Equal(present.Count(p => p) * 512L, stats.ChangedBytes);
        }

        using (var child = kit.OpenChild())
        {
            Assert.Equal(0, child.ReplayedLogEntries);
            Check(child);
        }

        using var reader = VhdxReader.Open(new FileBlockSource(kit.ChildPath), ownsFile: true);
        Assert.Equal(PayloadBlockState.FullyPresent, reader.GetPayloadBlockEntry(2).PayloadState);
        Assert.Equal(PayloadBlockState.FullyPresent, reader.GetPayloadBlockEntry(4).PayloadState);
        Assert.Equal(PayloadBlockState.PartiallyPresent, reader.GetPayloadBlockEntry(0).PayloadState);
        Assert.Equal(PayloadBlockState.NotPresent, reader.GetPayloadBlockEntry(6).PayloadState);
        Assert.Equal(Guid.Empty, reader.Header.LogGuid);

        void Check(DifferencingVhdxFile child)
        {
            var all = new byte[child.Length];
            child.Read(0, all);
            for (int s = 0; s < present.Length; s++)
            {
                if (present[s])
                {
                    Assert.True(model.AsSpan(s * 512, 512).SequenceEqual(all.AsSpan(s * 512, 512)), $"sector {s} differs");
                }
            }

            long pos = 0;
            while (pos < child.Length)
            {
                var e = child.GetExtent(pos, long.MaxValue);
                Assert.Equal(pos, e.Offset);
                for (long at = e.Offset; at < e.End; at += 512)
                {
                    Assert.True(present[at / 512] == (e.Kind == ExtentKind.Data), $"extent {e} disagrees at sector {at / 512}");
                }

                pos = e.End;
            }
        }
    }

    [Fact]
    public void UnalignedWritesAreRefusedByTheChild()
    {
        using var kit = new DiffTestKit(8 * MiB, exportBase: false);
        using var child = kit.CreateChild();
        Assert.Throws<ArgumentException>(() => child.Write(100, new byte[512]));
        Assert.Throws<ArgumentException>(() => child.Write(512, new byte[100]));
    }
}
