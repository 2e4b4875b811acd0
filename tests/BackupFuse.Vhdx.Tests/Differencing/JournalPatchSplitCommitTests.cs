using BackupFuse.Core;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>
/// The metadata journal commits a patch-store batch larger than one log entry in dependency order: the patch pages
/// first, the index that points at them last, so a crash between the entries never leaves the index naming a page
/// whose bytes are not on disk.
/// </summary>
public sealed class JournalPatchSplitCommitTests
{
    private const int Page = ISynthesizedPatchStore.PageSize;
    private const int Pages = 300; // more than one log entry (254 sectors) holds

    [Fact]
    public void EveryPrefixOfASplitPatchCommitKeepsTheIndexConsistent()
    {
        var data = new byte[Pages * Page];
        new Random(12).NextBytes(data);
        int entries = 0;
        for (int crashAt = 1; crashAt <= 6; crashAt++)
        {
            using var kit = new DiffTestKit(8 * DiffTestKit.MiB, exportBase: false);
            Assert.True(kit.Base.Layout.PayloadOffset > data.Length, "the pages must lie before the payload");
            var original = new byte[data.Length];
            kit.Base.Read(0, original);
            var positions = new List<int>();
            var child = kit.CreateChild();
            child.AutoCommitThreshold = int.MaxValue;
            var vhdx = new SynthesizedVhdx(kit.Overlay(child), kit.Base.Layout.Identity, child.Patches, kit.Base.Layout.Options);
            vhdx.Write(0, data);
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
            }
            else
            {
                // Tear the entry the crash interrupted: the file holds exactly the entries before it.
                int start = crashAt == 1 ? 0 : positions[crashAt - 2];
                using var raw = new FileBlockSource(kit.ChildPath, writable: true);
                raw.Write(DifferencingVhdxFormat.LogOffset + start + 200, new byte[] { 0xA5 });
            }

            using var reopened = kit.OpenChild();
            using var view = new SynthesizedVhdx(kit.Overlay(reopened), kit.Base.Layout.Identity, reopened.Patches, kit.Base.Layout.Options);
            var back = new byte[data.Length];
            view.Read(0, back);
            int present = 0;
            for (int i = 0; i < Pages; i++)
            {
                var page = back.AsSpan(i * Page, Page);
                bool isNew = page.SequenceEqual(data.AsSpan(i * Page, Page));
                Assert.True(isNew || page.SequenceEqual(original.AsSpan(i * Page, Page)), $"crash at entry {crashAt}: page {i} is neither old nor new");
                present += isNew ? 1 : 0;
            }

            Assert.Equal(reopened.GetStatistics().PatchedPages, present);
            Assert.True(present == 0 || present == Pages, $"crash at entry {crashAt}: {present} of {Pages} pages");
            if (!crashed)
            {
                Assert.Equal(Pages, present);
                break;
            }
        }

        Assert.True(entries >= 3, $"{entries} entries: the batch did not need splitting");
    }
}
