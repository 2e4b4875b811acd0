using System.Runtime.InteropServices;
using BackupFuse.Fuse.Interop;

namespace BackupFuse.Fuse.Overlay;

// Design notes (resolution beneath the directory):
// - The daemon (often root) resolves relative paths FUSE gives it. The kernel has already followed every symlink
//   before asking FUSE, so a symlink met while the daemon resolves a path means the tree changed under it (a race, or
//   a user swapping a directory for a symlink to a place only root may write): the resolution fails, it never acts
//   outside the tree. Opens go through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): ELOOP
//   for a symlink anywhere, EXDEV for a ".." that would climb out. Other path operations open the PARENT that way
//   (O_PATH) and apply their *at() call to the last name without following it (TryOpenParent, BeneathParent).
// - RESOLVE_NO_XDEV is deliberately not used: a file system mounted below the served directory was served before
//   (it can only be placed there by root, or be a user's own FUSE mount, which the kernel refuses to root without
//   allow_other), and crossing INTO a mount cannot lead outside the tree; symlinks inside it are still refused.
// - Where openat2 is unavailable (ENOSYS on kernels before 5.6; EPERM/ENOSYS from a container's seccomp filter) the
//   same property comes from a walk: one component at a time with openat(O_PATH|O_DIRECTORY|O_NOFOLLOW), ".."
//   refused (EXDEV), a symlink reported as ELOOP like openat2 does, the last name opened with O_NOFOLLOW. Whether
//   openat2 works is probed once per process.
// - On macOS (NativeAbi.Current.Overlay.HasOpenat2 false; openat2 is never probed there) the walk is the only path.
//   O_PATH does not exist there: the canonical O_PATH bit translates to nothing, so the directories on the way are
//   opened O_RDONLY|O_DIRECTORY|O_NOFOLLOW (read permission on them is needed, which the daemon has on the tree it
//   serves), and entries that must be acted on without being followed are pinned with LibC.OpenPinned
//   (O_SYMLINK|O_NONBLOCK there) rather than opened O_PATH (PinBeneath, ChangeModeNoFollow). The walk is forced on
//   Linux by ResolveByWalking in PassThroughSymlinkTests and OverlayAbiWalkTests, so the macOS path runs in tests. (OpenDirectory keeps its own walk: it throws, naming the component it
//   refused, for the daemon's state files; this one reports errno for FUSE.)
// - Errors are returned as -1 with errno set (the callers turn errno into the FUSE answer), so the errno users see
//   in normal use is that of the plain *at() call (ENOENT, ENOTDIR, EISDIR, ...).

/// <summary>Path resolution that never leaves the directory and never follows a symlink (see design notes).</summary>
public sealed unsafe partial class UnderlyingDirectory
{
    private const ulong BeneathResolve = LibC.RESOLVE_BENEATH | LibC.RESOLVE_NO_SYMLINKS | LibC.RESOLVE_NO_MAGICLINKS;
    private const int ParentFlags = LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC;

    private static readonly Lazy<bool> Openat2Works = new(ProbeOpenat2);

    /// <summary>Whether the platform may have openat2 at all (never probed where it cannot: the syscall number means something else there).</summary>
    private static bool HasOpenat2 => BackupFuse.Core.Native.NativeAbi.Current?.Overlay.HasOpenat2 ?? true;

    /// <summary>Resolve by walking component by component even where openat2 works (tests of the fallback).</summary>
    internal bool ResolveByWalking { get; set; }

    /// <summary>
    /// Opens <paramref name="relative"/> (NUL-terminated, relative) beneath this directory with open(2)
    /// <paramref name="flags"/>, following no symlink on the way (see design notes): the descriptor, or -1 and errno.
    /// O_CLOEXEC is added; add O_NOFOLLOW to open a final symlink itself (only with O_PATH) rather than fail.
    /// </summary>
    internal int OpenBeneath(byte* relative, int flags, uint mode = 0)
    {
        int fd = Resolve(relative, flags | LibC.O_CLOEXEC, mode);
        if (fd < 0)
        {
            Marshal.SetLastPInvokeError(-fd);
            return -1;
        }

        return fd;
    }

    /// <summary>
    /// Opens the directory that holds the last component of <paramref name="relative"/> (O_PATH, resolved beneath
    /// this directory) and gives the last name; false with errno set when a component is missing, not a directory,
    /// or a symlink. A path without '/' needs no open: the parent is this directory.
    /// </summary>
    internal bool TryOpenParent(byte* relative, out BeneathParent parent)
    {
        int lastSlash = -1;
        int length = 0;
        for (; relative[length] != 0; length++)
        {
            if (relative[length] == '/')
            {
                lastSlash = length;
            }
        }

        if (lastSlash < 0)
        {
            parent = new BeneathParent(Descriptor, relative, owned: false);
            return true;
        }

        var prefix = lastSlash < 1024 ? stackalloc byte[lastSlash + 1] : new byte[lastSlash + 1];
        new ReadOnlySpan<byte>(relative, lastSlash).CopyTo(prefix);
        prefix[lastSlash] = 0;
        fixed (byte* p = prefix)
        {
            int fd = OpenBeneath(p, ParentFlags);
            parent = fd >= 0 ? new BeneathParent(fd, relative + lastSlash + 1, owned: true) : default;
            return fd >= 0;
        }
    }

    /// <summary>
    /// Pins the entry <paramref name="relative"/> beneath this directory without following it (its parent resolved
    /// like <see cref="TryOpenParent"/>, the last name opened with LibC.OpenPinned): the descriptor, for fstat and
    /// the LibC *Pinned calls, or -1 and errno.
    /// </summary>
    internal int PinBeneath(byte* relative)
    {
        if (!TryOpenParent(relative, out var parent))
        {
            return -1;
        }

        using (parent)
        {
            return LibC.OpenPinned(parent.Descriptor, parent.Name);
        }
    }

    /// <summary>
    /// chmod of <paramref name="name"/> in the directory <paramref name="dirfd"/> without following it: the entry is
    /// pinned (LibC.OpenPinned) and changed through it (fchmodat has no working AT_SYMLINK_NOFOLLOW on Linux). A
    /// symlink is refused with EOPNOTSUPP, as Linux's lchmod answers. 0, or -1 and errno.
    /// </summary>
    internal static int ChangeModeNoFollow(int dirfd, byte* name, uint mode)
    {
        int fd = LibC.OpenPinned(dirfd, name);
        if (fd < 0)
        {
            return -1;
        }

        int rc = ChangeModeOfPathDescriptor(fd, mode);
        return CloseKeepingErrno(fd, rc);
    }

    /// <summary>chmod of the object a pinned descriptor refers to (EOPNOTSUPP for a symlink): 0, or -1 and errno.</summary>
    internal static int ChangeModeOfPathDescriptor(int fd, uint mode)
    {
        Stat st;
        if (LibC.fstat(fd, &st) != 0)
        {
            return -1;
        }

        if ((st.Mode & LibC.S_IFMT) == LibC.S_IFLNK)
        {
            Marshal.SetLastPInvokeError(Errno.EOPNOTSUPP);
            return -1;
        }

        return LibC.ChmodPinned(fd, mode);
    }

    /// <summary>Closes <paramref name="fd"/> and returns <paramref name="rc"/> with the errno of the call before.</summary>
    internal static int CloseKeepingErrno(int fd, int rc)
    {
        int errno = Marshal.GetLastPInvokeError(); // the native value: LastError translates it when it is read
        LibC.close(fd);
        Marshal.SetLastPInvokeError(errno);
        return rc;
    }

    /// <summary>The descriptor, or -errno.</summary>
    private int Resolve(byte* relative, int flags, uint mode)
    {
        if (!ResolveByWalking && HasOpenat2 && Openat2Works.Value)
        {
            var how = new OpenHow
            {
                Flags = LibC.NativeOpenFlags(flags & LibC.ValidOpenFlags),
                Mode = (flags & LibC.O_CREAT) != 0 ? mode & 0xFFF : 0,
                Resolve = BeneathResolve,
            };
            long fd = LibC.syscall_openat2(LibC.SYS_openat2, Descriptor, relative, &how, (nuint)sizeof(OpenHow));
            return fd >= 0 ? (int)fd : -LibC.LastError();
        }

        return Walk(relative, flags, mode);
    }

    /// <summary>The fallback of <see cref="Resolve"/>: one component at a time, no symlink, no "..".</summary>
    private int Walk(byte* relative, int flags, uint mode)
    {
        int length = 0;
        while (relative[length] != 0)
        {
            length++;
        }

        var copy = length < 1024 ? stackalloc byte[length + 1] : new byte[length + 1];
        new ReadOnlySpan<byte>(relative, length).CopyTo(copy);
        copy[length] = 0;
        var names = new List<int>(); // start of each component, NUL-terminated in place; "." and empty ones left out
        for (int start = 0; start <= length;)
        {
            int end = copy[start..].IndexOfAny((byte)'/', (byte)0) + start;
            copy[end] = 0;
            var name = copy[start..end];
            if (name.SequenceEqual(".."u8))
            {
                return -Errno.EXDEV;
            }

            if (!name.IsEmpty && !name.SequenceEqual("."u8))
            {
                names.Add(start);
            }

            start = end + 1;
        }

        fixed (byte* path = copy)
        fixed (byte* dot = ".\0"u8)
        {
            int fd = Descriptor;
            for (int i = 0; ; i++)
            {
                bool last = i >= names.Count - 1;
                byte* name = names.Count == 0 ? dot : path + names[i];
                int opened = last
                    ? LibC.openat(fd, name, flags | LibC.O_NOFOLLOW, mode)
                    : LibC.openat(fd, name, ParentFlags | LibC.O_NOFOLLOW, 0);
                int result = opened >= 0 ? opened : -SymlinkAsLoop(fd, name, LibC.LastError());
                if (fd != Descriptor)
                {
                    LibC.close(fd);
                }

                if (result < 0 || last)
                {
                    return result;
                }

                fd = result;
            }
        }
    }

    /// <summary>ENOTDIR from O_DIRECTORY|O_NOFOLLOW on a symlink becomes ELOOP, as openat2 reports a symlink.</summary>
    private static int SymlinkAsLoop(int dirfd, byte* name, int errno)
    {
        Stat st;
        return errno == Errno.ENOTDIR && LibC.fstatat(dirfd, name, &st, LibC.AT_SYMLINK_NOFOLLOW) == 0 && (st.Mode & LibC.S_IFMT) == LibC.S_IFLNK
            ? Errno.ELOOP
            : errno;
    }

    private static bool ProbeOpenat2()
    {
        fixed (byte* root = "/\0"u8)
        fixed (byte* dot = ".\0"u8)
        {
            int rootFd = LibC.openat(LibC.AT_FDCWD, root, ParentFlags, 0);
            if (rootFd < 0)
            {
                return false;
            }

            var how = new OpenHow { Flags = LibC.NativeOpenFlags(ParentFlags), Resolve = BeneathResolve };
            long fd = LibC.syscall_openat2(LibC.SYS_openat2, rootFd, dot, &how, (nuint)sizeof(OpenHow));
            LibC.close(rootFd);
            if (fd < 0)
            {
                return false; // ENOSYS (old kernel), EPERM/ENOSYS (seccomp), EINVAL (unknown resolve flags)
            }

            LibC.close((int)fd);
            return true;
        }
    }
}
