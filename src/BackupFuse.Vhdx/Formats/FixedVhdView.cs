using BackupFuse.Core;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - A FIXED VHD: the raw disk, then a 512-byte footer (cookie "conectix", disk type 2, data offset all ones, CHS
//   geometry per the specification, checksum). File length = disk size + 512. The disk size must be a multiple of 512
//   (a VHD has whole sectors); the caller's disk is the VHDX's virtual disk, already rounded up.
// - Determinism: the unique id is a name-based GUID of the identity (VhdxLayout.DeriveGuid) and the time stamp is the
//   caller's (the backup's creation time), so the same backup point gives the same bytes on every run.
// - Creator application "win " (Hyper-V's): readers disagree on whether the CHS geometry or the footer's current
//   size is the disk size, and CHS cannot express most sizes. QEMU up to 9.x takes the current size only for a few
//   known creators ("win ", "qem2", "d2v ", "CTXS", "tap") and the CHS product for any other (checked: QEMU 7.2 shows
//   a "bfus" disk 16 KiB short); QEMU 10 and Hyper-V, VirtualBox, libvhdi, 7-Zip use the current size. "win " makes
//   every one of them see the same, exact size.
// - Writes: disk bytes go to the disk; the footer is a RewritableRegion (QEMU never writes it to a fixed VHD; other
//   writers may update it), kept byte-exact in the caller's scratch area. Nothing is ever appended.
// - Non-owning; thread-safe as its parts are.

/// <summary>A fixed VHD file over a disk: its bytes, then a synthesized footer.</summary>
public sealed class FixedVhdView : BlockSource
{
    /// <summary>Largest disk a VHD may hold: 2040 GiB (the specification's limit, and QEMU's).</summary>
    public const long MaxDiskSize = 0xFF000000L * 512;

    /// <summary>The creator application written into the footer.</summary>
    public const string CreatorApplication = "win ";

    private readonly IBlockSource _disk;
    private readonly RewritableRegion _footer;

    /// <summary>The VHD over <paramref name="disk"/> with <paramref name="footer"/> (see <see cref="CreateFooter"/>).</summary>
    public FixedVhdView(IBlockSource disk, RewritableRegion footer)
    {
        _disk = disk ?? throw new ArgumentNullException(nameof(disk));
        _footer = footer ?? throw new ArgumentNullException(nameof(footer));
        if (footer.Length != VhdFooter.Size)
        {
            throw new ArgumentException("a VHD footer is 512 bytes", nameof(footer));
        }

        CheckDiskSize(disk.Length);
    }

    /// <inheritdoc/>
    public override long Length => _disk.Length + VhdFooter.Size;

    /// <inheritdoc/>
    public override int BlockSize => _disk.BlockSize;

    /// <inheritdoc/>
    public override bool CanWrite => _disk.CanWrite;

    /// <summary>Throws <see cref="InvalidDataException"/> unless a VHD can hold a disk of <paramref name="diskSize"/> bytes.</summary>
    public static void CheckDiskSize(long diskSize)
    {
        if (diskSize % 512 != 0 || diskSize <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(diskSize), diskSize, "a VHD holds whole 512-byte sectors");
        }

        if (diskSize > MaxDiskSize)
        {
            throw new InvalidDataException($"disk of {diskSize} bytes is larger than VHD's 2040 GiB limit ({MaxDiskSize} bytes): it cannot be shown as a VHD (use .vhdx or .img)");
        }
    }

    /// <summary>The footer bytes of a fixed VHD over a disk of <paramref name="diskSize"/> bytes.</summary>
    /// <param name="diskSize">Virtual size (a multiple of 512).</param>
    /// <param name="identity">The identity the unique id derives from (the backup point's id).</param>
    /// <param name="createdUtc">The time stamp.</param>
    public static byte[] CreateFooter(long diskSize, Guid identity, DateTime createdUtc)
    {
        CheckDiskSize(diskSize);
        var footer = new VhdFooter(VhdFooter.TimestampOf(createdUtc), CreatorApplication, 0x00010000, (ulong)diskSize, (ulong)diskSize,
            VhdGeometry.FromTotalSectors(diskSize / 512), VhdFooter.FixedDisk, VhdxLayout.DeriveGuid(identity, "BackupFuse.Vhd/v1/UniqueId"));
        var bytes = new byte[VhdFooter.Size];
        footer.Write(bytes);
        return bytes;
    }

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        long diskEnd = _disk.Length;
        if (offset < diskEnd)
        {
            int n = (int)Math.Min(buffer.Length, diskEnd - offset);
            _disk.Read(offset, buffer[..n]);
            buffer = buffer[n..];
            offset += n;
        }

        if (!buffer.IsEmpty)
        {
            _footer.Read((int)(offset - diskEnd), buffer);
        }
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        AssertRange(offset, data.Length);
        long diskEnd = _disk.Length;
        if (offset < diskEnd)
        {
            int n = (int)Math.Min(data.Length, diskEnd - offset);
            _disk.Write(offset, data[..n]);
            data = data[n..];
            offset += n;
        }

        if (!data.IsEmpty)
        {
            if (!_disk.CanWrite)
            {
                throw new NotSupportedException("the VHD is read-only");
            }

            _footer.Write((int)(offset - diskEnd), data);
        }
    }

    /// <inheritdoc/>
    public override void Flush()
    {
        _disk.Flush();
        _footer.Flush();
    }

    /// <inheritdoc/>
    public override Extent GetExtent(long offset, long maxLength)
    {
        AssertRange(offset, 1);
        if (offset >= _disk.Length)
        {
            return new Extent(offset, Math.Min(maxLength, Length - offset), ExtentKind.Data);
        }

        var e = _disk.GetExtent(offset, Math.Min(maxLength, _disk.Length - offset));
        return e;
    }
}
