namespace BackupFuse.Fuse.Interop.Abi;

// Design notes:
// - Same idea as StatLayout for struct statvfs. Darwin's block and file counts are 32-bit (fsblkcnt_t and
//   fsfilcnt_t are unsigned int): larger values are clamped to 0xFFFFFFFF rather than wrapped, so a big volume
//   reports "at least this much" instead of a small wrong number.

/// <summary>Where the members of a platform's native <c>struct statvfs</c> are.</summary>
public sealed record StatVfsLayout
{
    /// <summary>sizeof(struct statvfs).</summary>
    public required int StructSize { get; init; }

    /// <summary>f_bsize.</summary>
    public required NativeField BlockSize { get; init; }

    /// <summary>f_frsize.</summary>
    public required NativeField FragmentSize { get; init; }

    /// <summary>f_blocks.</summary>
    public required NativeField Blocks { get; init; }

    /// <summary>f_bfree.</summary>
    public required NativeField BlocksFree { get; init; }

    /// <summary>f_bavail.</summary>
    public required NativeField BlocksAvailable { get; init; }

    /// <summary>f_files.</summary>
    public required NativeField Files { get; init; }

    /// <summary>f_ffree.</summary>
    public required NativeField FilesFree { get; init; }

    /// <summary>f_favail.</summary>
    public required NativeField FilesAvailable { get; init; }

    /// <summary>f_fsid.</summary>
    public required NativeField FileSystemId { get; init; }

    /// <summary>f_flag.</summary>
    public required NativeField Flags { get; init; }

    /// <summary>f_namemax.</summary>
    public required NativeField NameMax { get; init; }

    /// <summary>True when this layout is the managed <see cref="StatVfs"/> itself.</summary>
    public bool IsCanonical { get; init; }

    /// <summary>Zeroes the native struct and stores <paramref name="stat"/> into it.</summary>
    public unsafe void Write(in StatVfs stat, byte* native)
    {
        if (IsCanonical)
        {
            *(StatVfs*)native = stat;
            return;
        }

        new Span<byte>(native, StructSize).Clear();
        Store(BlockSize, native, stat.BlockSize);
        Store(FragmentSize, native, stat.FragmentSize);
        Store(Blocks, native, stat.Blocks);
        Store(BlocksFree, native, stat.BlocksFree);
        Store(BlocksAvailable, native, stat.BlocksAvailable);
        Store(Files, native, stat.Files);
        Store(FilesFree, native, stat.FilesFree);
        Store(FilesAvailable, native, stat.FilesAvailable);
        Store(FileSystemId, native, stat.FileSystemId);
        Store(Flags, native, stat.Flags);
        Store(NameMax, native, stat.NameMax);
    }

    /// <summary>Reads the native struct into the canonical form.</summary>
    public unsafe StatVfs Read(byte* native)
    {
        if (IsCanonical)
        {
            return *(StatVfs*)native;
        }

        return new StatVfs
        {
            BlockSize = (ulong)BlockSize.Read(native),
            FragmentSize = (ulong)FragmentSize.Read(native),
            Blocks = (ulong)Blocks.Read(native),
            BlocksFree = (ulong)BlocksFree.Read(native),
            BlocksAvailable = (ulong)BlocksAvailable.Read(native),
            Files = (ulong)Files.Read(native),
            FilesFree = (ulong)FilesFree.Read(native),
            FilesAvailable = (ulong)FilesAvailable.Read(native),
            FileSystemId = (ulong)FileSystemId.Read(native),
            Flags = (ulong)Flags.Read(native),
            NameMax = (ulong)NameMax.Read(native),
        };
    }

    private static unsafe void Store(NativeField field, byte* native, ulong value)
    {
        ulong max = field.Size >= 8 ? ulong.MaxValue : (1UL << (field.Size * 8)) - 1;
        field.Write(native, (long)Math.Min(value, max));
    }
}
