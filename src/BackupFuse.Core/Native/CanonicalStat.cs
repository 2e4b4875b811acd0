using System.Runtime.InteropServices;

namespace BackupFuse.Core.Native;

/// <summary>
/// struct stat in the canonical layout (glibc x86_64, 144 bytes; NativeAbi.LinuxX64.Stat), as PosixCalls returns it
/// on every platform.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
public struct CanonicalStat
{
    /// <summary>st_dev.</summary>
    [FieldOffset(0)] public ulong Device;

    /// <summary>st_ino.</summary>
    [FieldOffset(8)] public ulong Inode;

    /// <summary>st_nlink.</summary>
    [FieldOffset(16)] public ulong LinkCount;

    /// <summary>st_mode.</summary>
    [FieldOffset(24)] public uint Mode;

    /// <summary>st_uid.</summary>
    [FieldOffset(28)] public uint Uid;

    /// <summary>st_gid.</summary>
    [FieldOffset(32)] public uint Gid;

    /// <summary>st_rdev.</summary>
    [FieldOffset(40)] public ulong RDevice;

    /// <summary>st_size.</summary>
    [FieldOffset(48)] public long Size;

    /// <summary>st_blksize.</summary>
    [FieldOffset(56)] public long BlockSize;

    /// <summary>st_blocks (512-byte units).</summary>
    [FieldOffset(64)] public long Blocks;

    /// <summary>st_mtim.tv_sec.</summary>
    [FieldOffset(88)] public long ModifySeconds;

    /// <summary>st_mtim.tv_nsec.</summary>
    [FieldOffset(96)] public long ModifyNanoseconds;

    /// <summary>st_ctim.tv_sec (status change: set by the kernel, no user can choose it).</summary>
    [FieldOffset(104)] public long ChangeSeconds;

    /// <summary>st_ctim.tv_nsec.</summary>
    [FieldOffset(112)] public long ChangeNanoseconds;
}
