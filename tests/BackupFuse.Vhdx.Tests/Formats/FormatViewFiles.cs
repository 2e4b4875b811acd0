using BackupFuse.Core;
using BackupFuse.Vhdx.Formats;

namespace BackupFuse.Vhdx.Tests.Formats;

/// <summary>Builds the format views over test disks the way the daemon does (a disk at an offset of a file, a scratch area in it) and writes them out.</summary>
internal static class FormatViewFiles
{
    /// <summary>Offset of the disk inside the backing file of the tests (not a multiple of anything the views use).</summary>
    public const long DiskOffset = 3 * 65536 + 512;

    /// <summary>Offset of the scratch area in the backing file.</summary>
    public const long ScratchOffset = 8192;

    /// <summary>A backing file holding <paramref name="disk"/> at <see cref="DiskOffset"/> and an empty scratch area before it.</summary>
    public static MemorySource Backing(byte[] disk)
    {
        var file = new MemorySource(DiskOffset + disk.Length, 512);
        file.Write(DiskOffset, disk);
        return file;
    }

    /// <summary>The fixed VHD over the disk in <paramref name="backing"/>.</summary>
    public static FixedVhdView Vhd(MemorySource backing, long diskLength, Guid identity, DateTime created) =>
        new(new RawDiskView(backing, DiskOffset, diskLength), new RewritableRegion("vhd-footer", FixedVhdView.CreateFooter(diskLength, identity, created), backing, ScratchOffset));

    /// <summary>The sparse VMDK over the disk in <paramref name="backing"/>.</summary>
    public static SparseVmdkView Vmdk(MemorySource backing, long diskLength, Guid identity, string name = "disk.vmdk")
    {
        var layout = SparseVmdkLayout.Create(diskLength);
        return new SparseVmdkView(layout, new RawDiskView(backing, DiskOffset, diskLength), new RewritableRegion("vmdk-header", layout.CreateHeaderAndDescriptor(identity, name), backing, ScratchOffset));
    }

    /// <summary>Writes every byte of <paramref name="source"/> to <paramref name="path"/>.</summary>
    public static void Save(IBlockSource source, string path)
    {
        using var f = File.Create(path);
        var buffer = new byte[1 << 20];
        for (long pos = 0; pos < source.Length; pos += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, source.Length - pos);
            source.Read(pos, buffer.AsSpan(0, n));
            f.Write(buffer, 0, n);
        }
    }

    /// <summary>Random bytes.</summary>
    public static byte[] RandomDisk(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
