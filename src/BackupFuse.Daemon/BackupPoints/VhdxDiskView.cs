using BackupFuse.Core;
using BackupFuse.Vhdx;

namespace BackupFuse.Daemon.BackupPoints;

// Design notes:
// - The virtual disk exactly as a reader of the synthesized VHDX sees it: VirtualDiskSize bytes (the disk length
//   rounded up to whole logical sectors), read from the VHDX's payload region (fixed layout: disk byte d is file byte
//   PayloadOffset + d). So a guest write into the rounded-up tail past the backup's last byte, which the writable
//   VHDX keeps in its patch store and not in the disk, is part of this view; the disk source alone would drop it.
// - Non-owning: the VHDX belongs to the caller. Read-only.

/// <summary>The virtual disk of a synthesized VHDX, as a guest reading the VHDX sees it.</summary>
public sealed class VhdxDiskView(SynthesizedVhdx vhdx) : BlockSource
{
    /// <inheritdoc/>
    public override long Length => vhdx.Layout.VirtualDiskSize;

    /// <inheritdoc/>
    public override int BlockSize => vhdx.Layout.Options.LogicalSectorSize;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        vhdx.Read(vhdx.MapToFile(offset), buffer);
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        var e = vhdx.GetExtent(vhdx.MapToFile(offset), Math.Min(maxLength, Length - offset));
        return new Extent(offset, Math.Min(e.Length, Length - offset), e.Kind);
    }
}
