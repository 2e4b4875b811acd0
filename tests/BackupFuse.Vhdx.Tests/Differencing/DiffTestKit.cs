using BackupFuse.Core;
using BackupFuse.Testing;
using BackupFuse.Vhdx.Differencing;

namespace BackupFuse.Vhdx.Tests.Differencing;

/// <summary>A pristine base (synthesized over a pattern disk, exported as base.vhdx) and a child next to it.</summary>
internal sealed class DiffTestKit : IDisposable
{
    public const long MiB = 1L << 20;

    public DiffTestKit(long diskLength, ulong seed = 7, int childBlockSize = 2 * 1024 * 1024, bool exportBase = true, VhdxLayoutOptions? options = null, IBlockSource? disk = null)
    {
        Dir = new TempDirectory("bf-diff");
        Disk = disk ?? new PatternSource(diskLength, seed, zeroBlock: 1 << 20, zeroEvery: 4);
        Base = new SynthesizedVhdx(Disk, VhdxLayout.DeriveGuid(Guid.Empty, "diff-test/" + seed), options ?? new VhdxLayoutOptions { BlockSize = 4 << 20 }, ownsDisk: false);
        Parent = DifferencingParent.FromLayout(Base.Layout, "base.vhdx");
        ChildBlockSize = childBlockSize;
        if (exportBase)
        {
            SynthesizedVhdxExport.ToSparseFile(Base, BasePath);
        }
    }

    public TempDirectory Dir { get; }

    public IBlockSource Disk { get; }

    public SynthesizedVhdx Base { get; }

    public DifferencingParent Parent { get; }

    public int ChildBlockSize { get; }

    public string BasePath => Dir["base.vhdx"];

    public string ChildPath => Dir["child.vhdx"];

    /// <summary>The disk's bytes padded to the virtual size (what the leaf reads before any write).</summary>
    public byte[] BaseBytes()
    {
        var bytes = new byte[Base.Layout.VirtualDiskSize];
        Disk.Read(0, bytes.AsSpan(0, (int)Disk.Length));
        return bytes;
    }

    public DifferencingVhdxFile CreateChild() => DifferencingVhdxFile.Create(ChildPath, Parent, ChildBlockSize);

    public DifferencingVhdxFile OpenChild() => DifferencingVhdxFile.Open(ChildPath, Parent.DataWriteGuid, Parent.VirtualSize);

    /// <summary>An overlay over a fresh copy of the disk (the overlay owns what it is given).</summary>
    public DifferencingVhdxOverlay Overlay(DifferencingVhdxFile child) => new(new NonOwningSource(Disk), child);

    public void Dispose()
    {
        Base.Dispose();
        Disk.Dispose();
        Dir.Dispose();
    }

    /// <summary>Forwards to a source without owning it.</summary>
    private sealed class NonOwningSource(IBlockSource inner) : BlockSource
    {
        public override long Length => inner.Length;

        public override int BlockSize => inner.BlockSize;

        public override void Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

        public override Extent GetExtent(long offset, long maxLength) => inner.GetExtent(offset, maxLength);
    }
}
