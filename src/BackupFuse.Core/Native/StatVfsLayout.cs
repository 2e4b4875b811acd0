namespace BackupFuse.Core.Native;

// Design notes:
// - Same idea as StatLayout for struct statvfs (canonical = glibc x86_64). Darwin's block and file counts are 32-bit (fsblkcnt_t and
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

    /// <summary>True when this layout is the canonical one (linux-x64).</summary>
    public bool IsCanonical { get; init; }

    /// <summary>Copies a struct statvfs between two layouts (target zeroed first; counters clamped to the target's width).</summary>
    public static unsafe void Copy(StatVfsLayout from, byte* source, StatVfsLayout to, byte* target)
    {
        if (from.IsCanonical && to.IsCanonical)
        {
            Buffer.MemoryCopy(source, target, to.StructSize, from.StructSize);
            return;
        }

        new Span<byte>(target, to.StructSize).Clear();
        CopyField(from.BlockSize, source, to.BlockSize, target);
        CopyField(from.FragmentSize, source, to.FragmentSize, target);
        CopyField(from.Blocks, source, to.Blocks, target);
        CopyField(from.BlocksFree, source, to.BlocksFree, target);
        CopyField(from.BlocksAvailable, source, to.BlocksAvailable, target);
        CopyField(from.Files, source, to.Files, target);
        CopyField(from.FilesFree, source, to.FilesFree, target);
        CopyField(from.FilesAvailable, source, to.FilesAvailable, target);
        CopyField(from.FileSystemId, source, to.FileSystemId, target);
        CopyField(from.Flags, source, to.Flags, target);
        CopyField(from.NameMax, source, to.NameMax, target);
    }

    private static unsafe void CopyField(NativeField from, byte* source, NativeField to, byte* target)
    {
        ulong value = (ulong)from.Read(source);
        ulong max = to.Size >= 8 ? ulong.MaxValue : (1UL << (to.Size * 8)) - 1;
        to.Write(target, (long)Math.Min(value, max));
    }
}
