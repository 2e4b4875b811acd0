namespace BackupFuse.Core.Native;

// Design notes:
// - The code is written against one struct stat, the "canonical" form: glibc x86_64's (the FUSE binding's Stat,
//   the image readers' stat structs). A StatLayout says where each member lives in a platform's native struct,
//   and Copy moves the values between two layouts. On linux-x64 the two are the same bytes (IsCanonical) and the
//   callers use the native struct in place, as they always did.
// - Members the canonical form lacks (Darwin's st_birthtimespec, st_flags, st_gen) are written as: birth time =
//   modify time (the oldest time the file system reports), flags = gen = 0.
// - Narrower members are clamped, not wrapped (Darwin's 16-bit st_nlink, 32-bit st_dev and st_blksize).
// - The tables and their sources are in NativeAbi.*.cs; StructLayoutTests/NativeAbiTests check them.

/// <summary>Where the members of a platform's native <c>struct stat</c> are.</summary>
public sealed record StatLayout
{
    /// <summary>sizeof(struct stat).</summary>
    public required int StructSize { get; init; }

    /// <summary>st_dev.</summary>
    public required NativeField Device { get; init; }

    /// <summary>st_ino.</summary>
    public required NativeField Inode { get; init; }

    /// <summary>st_mode.</summary>
    public required NativeField Mode { get; init; }

    /// <summary>st_nlink.</summary>
    public required NativeField LinkCount { get; init; }

    /// <summary>st_uid.</summary>
    public required NativeField Uid { get; init; }

    /// <summary>st_gid.</summary>
    public required NativeField Gid { get; init; }

    /// <summary>st_rdev.</summary>
    public required NativeField RDevice { get; init; }

    /// <summary>st_size.</summary>
    public required NativeField Size { get; init; }

    /// <summary>st_blksize.</summary>
    public required NativeField BlockSize { get; init; }

    /// <summary>st_blocks.</summary>
    public required NativeField Blocks { get; init; }

    /// <summary>Offset of st_atim / st_atimespec (a struct timespec: tv_sec at +0, tv_nsec at +8).</summary>
    public required int AccessTime { get; init; }

    /// <summary>Offset of st_mtim / st_mtimespec.</summary>
    public required int ModifyTime { get; init; }

    /// <summary>Offset of st_ctim / st_ctimespec.</summary>
    public required int ChangeTime { get; init; }

    /// <summary>Offset of st_birthtimespec, or -1 where the struct has none.</summary>
    public int BirthTime { get; init; } = -1;

    /// <summary>True when this layout is the canonical one (linux-x64): copying is a plain memory copy.</summary>
    public bool IsCanonical { get; init; }

    /// <summary>
    /// Copies a struct stat laid out as <paramref name="from"/> at <paramref name="source"/> into one laid out as
    /// <paramref name="to"/> at <paramref name="target"/> (zeroed first; narrower members are clamped).
    /// </summary>
    public static unsafe void Copy(StatLayout from, byte* source, StatLayout to, byte* target)
    {
        if (from.IsCanonical && to.IsCanonical)
        {
            Buffer.MemoryCopy(source, target, to.StructSize, from.StructSize);
            return;
        }

        new Span<byte>(target, to.StructSize).Clear();
        CopyField(from.Device, source, to.Device, target, signed: false);
        CopyField(from.Inode, source, to.Inode, target, signed: false);
        CopyField(from.Mode, source, to.Mode, target, signed: false);
        CopyField(from.LinkCount, source, to.LinkCount, target, signed: false);
        CopyField(from.Uid, source, to.Uid, target, signed: false);
        CopyField(from.Gid, source, to.Gid, target, signed: false);
        CopyField(from.RDevice, source, to.RDevice, target, signed: false);
        CopyField(from.Size, source, to.Size, target, signed: true);
        CopyField(from.BlockSize, source, to.BlockSize, target, signed: true);
        CopyField(from.Blocks, source, to.Blocks, target, signed: true);
        CopyTime(source + from.AccessTime, target + to.AccessTime);
        CopyTime(source + from.ModifyTime, target + to.ModifyTime);
        CopyTime(source + from.ChangeTime, target + to.ChangeTime);
        if (to.BirthTime >= 0)
        {
            CopyTime(source + (from.BirthTime >= 0 ? from.BirthTime : from.ModifyTime), target + to.BirthTime);
        }
    }

    private static unsafe void CopyField(NativeField from, byte* source, NativeField to, byte* target, bool signed)
    {
        long value = from.Read(source, signed);
        if (to.Size < 8)
        {
            long max = (1L << (to.Size * 8 - (signed ? 1 : 0))) - 1;
            long min = signed ? -max - 1 : 0;
            value = Math.Clamp(value, min, max);
        }

        to.Write(target, value);
    }

    private static unsafe void CopyTime(byte* source, byte* target) => Buffer.MemoryCopy(source, target, 16, 16); // struct timespec { long tv_sec; long tv_nsec; } on every LP64 table here
}
