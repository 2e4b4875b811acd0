using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Formats;

namespace BackupFuse.Vhdx.Tests.Formats;

/// <summary>The byte-exact region kept in a scratch area, and the raw view of a disk at an offset.</summary>
public sealed class RewritableRegionTests
{
    [Fact]
    public void ReadsTheInitialBytesUntilWrittenThenKeepsWritesInTheStore()
    {
        var store = new MemorySource(64 * 1024, 512);
        var initial = Enumerable.Range(0, 1500).Select(i => (byte)i).ToArray();
        var region = new RewritableRegion("test", initial, store, 4096);
        var read = new byte[1500];
        region.Read(0, read);
        Assert.Equal(initial, read);
        Assert.False(region.IsRewritten);

        region.Write(700, new byte[] { 0xEE, 0xEF });
        var expected = (byte[])initial.Clone();
        expected[700] = 0xEE;
        expected[701] = 0xEF;
        var reopened = new RewritableRegion("test", initial, store, 4096);
        Assert.True(reopened.IsRewritten);
        reopened.Read(0, read);
        Assert.Equal(expected, read);

        // Nothing outside its scratch area was touched.
        var before = new byte[4096];
        store.Read(0, before);
        Assert.All(before, b => Assert.Equal(0, b));
        Assert.True(4096 + RewritableRegion.StoreLength(1500) <= store.Length);
    }

    [Fact]
    public void AStoredRegionWithAnotherLabelIsIgnored()
    {
        var store = new MemorySource(64 * 1024, 512);
        new RewritableRegion("vhd-footer", new byte[512], store, 0).Write(0, new byte[] { 7 });
        var other = new RewritableRegion("vmdk-header", new byte[] { 1, 2, 3 }, store, 0);
        Assert.False(other.IsRewritten);
        var read = new byte[3];
        other.Read(0, read);
        Assert.Equal(new byte[] { 1, 2, 3 }, read);
    }

    [Fact]
    public void TheRawViewMapsReadsWritesAndExtentsByTheOffset()
    {
        var file = new MemorySource(1 << 20, 512);
        file.Write(65536 + 1000, new byte[] { 0xAA });
        var view = new RawDiskView(file, 65536, 512 * 1024);
        Assert.Equal(512 * 1024, view.Length);
        var b = new byte[1];
        view.Read(1000, b);
        Assert.Equal(0xAA, b[0]);
        view.Write(2000, new byte[] { 0xBB });
        file.Read(65536 + 2000, b);
        Assert.Equal(0xBB, b[0]);
        Assert.Equal(ExtentKind.Unallocated, view.GetExtent(0, view.Length).Kind);
        var e = view.GetExtent(512, view.Length - 512);
        Assert.Equal(new Extent(512, 512, ExtentKind.Data), e); // the file's 512-byte block holding 65536 + 1000, shifted
        Assert.Throws<ArgumentOutOfRangeException>(() => new RawDiskView(file, 65536, 1 << 20));
    }
}
