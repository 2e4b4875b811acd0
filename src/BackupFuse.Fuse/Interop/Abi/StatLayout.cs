namespace BackupFuse.Fuse.Interop.Abi;

// Design notes:
// - The file system always fills the managed Stat (whose layout is glibc x86_64's, the "canonical" form); a
//   StatLayout says where each member lives in the platform's native struct stat so the binding can copy the
//   canonical values across. On linux-x64 the two are the same bytes and the binding never copies (IsCanonical).
// - Members the canonical form lacks (Darwin's st_birthtimespec, st_flags, st_gen) are written as: birth time =
//   modify time (the oldest time the file system reports), flags = gen = 0.
// - Narrower native members are written truncated (Darwin's 16-bit st_nlink is clamped, not wrapped).
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

    /// <summary>True when this layout is the managed <see cref="Stat"/> itself (no copy needed).</summary>
    public bool IsCanonical { get; init; }

    /// <summary>Zeroes the native struct at <paramref name="native"/> and stores <paramref name="stat"/> into it.</summary>
    public unsafe void Write(in Stat stat, byte* native)
    {
        if (IsCanonical)
        {
            *(Stat*)native = stat;
            return;
        }

        new Span<byte>(native, StructSize).Clear();
        Device.Write(native, (long)stat.Device);
        Inode.Write(native, (long)stat.Inode);
        Mode.Write(native, stat.Mode);
        LinkCount.Write(native, (long)Math.Min(stat.LinkCount, LinkCount.Size >= 8 ? ulong.MaxValue : (1UL << (LinkCount.Size * 8)) - 1));
        Uid.Write(native, stat.Uid);
        Gid.Write(native, stat.Gid);
        RDevice.Write(native, (long)stat.RDevice);
        Size.Write(native, stat.Size);
        BlockSize.Write(native, stat.BlockSize);
        Blocks.Write(native, stat.Blocks);
        WriteTime(native, AccessTime, stat.AccessTime);
        WriteTime(native, ModifyTime, stat.ModifyTime);
        WriteTime(native, ChangeTime, stat.ChangeTime);
        if (BirthTime >= 0)
        {
            WriteTime(native, BirthTime, stat.ModifyTime);
        }
    }

    /// <summary>Reads the native struct at <paramref name="native"/> into the canonical form.</summary>
    public unsafe Stat Read(byte* native)
    {
        if (IsCanonical)
        {
            return *(Stat*)native;
        }

        return new Stat
        {
            Device = (ulong)Device.Read(native),
            Inode = (ulong)Inode.Read(native),
            Mode = (uint)Mode.Read(native),
            LinkCount = (ulong)LinkCount.Read(native),
            Uid = (uint)Uid.Read(native),
            Gid = (uint)Gid.Read(native),
            RDevice = (ulong)RDevice.Read(native),
            Size = Size.Read(native, signed: true),
            BlockSize = BlockSize.Read(native, signed: true),
            Blocks = Blocks.Read(native, signed: true),
            AccessTime = *(Timespec*)(native + AccessTime),
            ModifyTime = *(Timespec*)(native + ModifyTime),
            ChangeTime = *(Timespec*)(native + ChangeTime),
        };
    }

    private static unsafe void WriteTime(byte* native, int offset, Timespec value) => *(Timespec*)(native + offset) = value;
}
