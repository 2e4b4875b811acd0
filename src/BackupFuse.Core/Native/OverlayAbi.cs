namespace BackupFuse.Core.Native;

// Design notes:
// - The platform part of the pass-through overlay's calls (the directory a mount serves), selected through
//   NativeAbi.Current.Overlay like every other native difference; the overlay itself only sees canonical (Linux)
//   numbers. Every number is taken from the header named next to it:
//
// [linux-rename] torvalds/linux include/uapi/linux/fs.h: RENAME_NOREPLACE (1 << 0), RENAME_EXCHANGE (1 << 1),
//                RENAME_WHITEOUT (1 << 2) (renameat2(2)).
// [xnu-rename]   apple-oss-distributions/xnu @e7776783 bsd/sys/stdio.h: RENAME_SECLUDE 0x1, RENAME_SWAP 0x2,
//                RENAME_EXCL 0x4, RENAME_NOFOLLOW_ANY 0x10; renameatx_np(int, const char *, int, const char *,
//                unsigned int), macOS 10.12+. No whiteouts.
// [glibc-dirent] glibc sysdeps/unix/sysv/linux/bits/dirent.h (LP64, x86_64 and aarch64 alike): d_ino u64 @0,
//                d_off i64 @8, d_reclen u16 @16, d_type u8 @18, d_name @19 (NativeAbiTests compiles it).
// [xnu-dirent]   apple-oss-distributions/xnu @8d741a5d bsd/sys/dirent.h, __DARWIN_STRUCT_DIRENTRY (the struct dirent
//                of __DARWIN_64_BIT_INO_T): d_ino u64 @0, d_seekoff u64 @8, d_reclen u16 @16, d_namlen u16 @18,
//                d_type u8 @20, d_name[1024] @21. DT_* values equal Linux's (DT_DIR 4, DT_REG 8, DT_LNK 10, ...).
//                apple-oss-distributions/Libc include/dirent.h: readdir is __DARWIN_INODE64(readdir),
//                rewinddir and fdopendir __DARWIN_ALIAS_I (closedir plain __DARWIN_ALIAS), so on x86_64 the
//                64-bit-inode entry points are "readdir$INODE64", "rewinddir$INODE64", "fdopendir$INODE64" (and
//                "fstat$INODE64", "fstatat$INODE64" from sys/stat.h); arm64 has only the 64-bit-inode functions,
//                unsuffixed.
// [xnu-fcntl]    apple-oss-distributions/xnu @1031c584 bsd/sys/fcntl.h: O_SYMLINK 0x00200000 ("allow open of a
//                symlink": the last component is not followed, a symlink is opened itself; O_NOFOLLOW with it
//                still fails ELOOP, xnu bsd/vfs/vfs_vnops.c vn_open_auth), O_NOFOLLOW_ANY 0x20000000,
//                O_EXEC 0x40000000, O_SEARCH (O_EXEC | O_DIRECTORY) = 0x40100000, F_PREALLOCATE 42.
//
// - What the overlay does with it (UnderlyingDirectory.Beneath.cs, LibC.Overlay.cs): without openat2 the path is
//   walked one component at a time; Linux opens the directories on the way with O_PATH, which has no Darwin
//   counterpart (the canonical O_PATH bit translates to nothing), so there they are opened O_RDONLY|O_DIRECTORY.
//   O_SEARCH would need no read permission but only exists in the SDKs of macOS 13+; the daemon needs read access
//   to the served tree anyway, so it is cited here and deliberately not used. A "pin" (an entry opened without
//   following it, to fstat/fchown/fchmod it) is O_PATH|O_NOFOLLOW on Linux and O_RDONLY|O_SYMLINK|O_NONBLOCK on
//   Darwin (O_NONBLOCK: a FIFO never blocks the open). Unlike O_PATH that is a real open: a socket cannot be pinned
//   (EOPNOTSUPP; a new socket then keeps the daemon's owner), and a device node made with mknod is opened (only
//   root may make one, and the pin is closed at once).
// - Deliberately not done: fallocate (Darwin's F_PREALLOCATE reserves space past end of file without changing the
//   size, which is not fallocate mode 0): HasFallocate false makes the overlay answer EOPNOTSUPP, which tells the
//   FUSE client the operation is not offered.

/// <summary>The platform numbers and entry points of the pass-through overlay's calls (see design notes).</summary>
public sealed record OverlayAbi
{
    /// <summary>Linux (x86_64 and aarch64): openat2, renameat2, O_PATH, fallocate, glibc struct dirent.</summary>
    public static OverlayAbi Linux { get; } = new()
    {
        HasOpenat2 = true,
        RenameEntryPoint = "renameat2",
        RenameFlagBits = [(RenameNoReplace, 1), (RenameExchange, 2), (RenameWhiteout, 4)], // [linux-rename]
        DirentInode = new(0, 8), // [glibc-dirent]
        DirentType = new(18, 1),
        DirentName = 19,
        Inode64Symbols = false,
        PinNativeFlags = 0,
        HasFallocate = true,
        HasFdatasync = true,
    };

    /// <summary>macOS on Apple silicon: the 64-bit-inode functions under their plain names.</summary>
    public static OverlayAbi MacOSArm64 { get; } = MacOS(inode64Symbols: false);

    /// <summary>macOS on Intel: the 64-bit-inode functions under "$INODE64" names.</summary>
    public static OverlayAbi MacOSX64 { get; } = MacOS(inode64Symbols: true);

    /// <summary>Canonical RENAME_NOREPLACE.</summary>
    public const int RenameNoReplace = 1;

    /// <summary>Canonical RENAME_EXCHANGE.</summary>
    public const int RenameExchange = 2;

    /// <summary>Canonical RENAME_WHITEOUT.</summary>
    public const int RenameWhiteout = 4;

    /// <summary>Darwin O_SYMLINK [xnu-fcntl].</summary>
    public const int DarwinOSymlink = 0x00200000;

    /// <summary>Darwin O_SEARCH = O_EXEC | O_DIRECTORY [xnu-fcntl] (cited, not used: see design notes).</summary>
    public const int DarwinOSearch = 0x40000000 | 0x00100000;

    /// <summary>Darwin O_NOFOLLOW_ANY [xnu-fcntl] (cited, not used: the walk refuses symlinks itself).</summary>
    public const int DarwinONoFollowAny = 0x20000000;

    /// <summary>Darwin fcntl F_PREALLOCATE [xnu-fcntl] (cited, not used: see design notes).</summary>
    public const int DarwinFPreallocate = 42;

    /// <summary>Whether openat2(2) with RESOLVE_BENEATH may exist (probed before use); false: the walk is the only path.</summary>
    public required bool HasOpenat2 { get; init; }

    /// <summary>The rename-with-flags call: renameat2 (Linux) or renameatx_np (macOS), same argument order.</summary>
    public required string RenameEntryPoint { get; init; }

    /// <summary>(canonical renameat2 flag, native flag) for every rename flag the platform has.</summary>
    public required IReadOnlyList<(int Canonical, int Native)> RenameFlagBits { get; init; }

    /// <summary>struct dirent d_ino.</summary>
    public required NativeField DirentInode { get; init; }

    /// <summary>struct dirent d_type (DT_* values are the same everywhere).</summary>
    public required NativeField DirentType { get; init; }

    /// <summary>Offset of d_name (NUL-terminated).</summary>
    public required int DirentName { get; init; }

    /// <summary>True where fstat/fstatat/readdir/fdopendir must be bound under their "$INODE64" names (osx-x64).</summary>
    public required bool Inode64Symbols { get; init; }

    /// <summary>
    /// Native open flags of a pin beyond O_RDONLY|O_NONBLOCK|O_CLOEXEC (Darwin: O_SYMLINK); 0 where the pin is
    /// canonical O_PATH|O_NOFOLLOW (Linux).
    /// </summary>
    public required int PinNativeFlags { get; init; }

    /// <summary>Whether fallocate(2) exists (else the overlay answers EOPNOTSUPP).</summary>
    public required bool HasFallocate { get; init; }

    /// <summary>Whether fdatasync(2) is a public call (else fsync is used).</summary>
    public required bool HasFdatasync { get; init; }

    /// <summary>Canonical renameat2 flags as the native word, or -1 when one of them does not exist here (EINVAL).</summary>
    public int NativeRenameFlags(int canonical)
    {
        int native = 0;
        foreach (var (c, n) in RenameFlagBits)
        {
            if ((canonical & c) != 0)
            {
                native |= n;
                canonical &= ~c;
            }
        }

        return canonical == 0 ? native : -1;
    }

    private static OverlayAbi MacOS(bool inode64Symbols) => new()
    {
        HasOpenat2 = false,
        RenameEntryPoint = "renameatx_np",
        RenameFlagBits = [(RenameNoReplace, 0x4), (RenameExchange, 0x2)], // [xnu-rename] RENAME_EXCL, RENAME_SWAP
        DirentInode = new(0, 8), // [xnu-dirent]
        DirentType = new(20, 1),
        DirentName = 21,
        Inode64Symbols = inode64Symbols,
        PinNativeFlags = DarwinOSymlink,
        HasFallocate = false,
        HasFdatasync = false,
    };
}
