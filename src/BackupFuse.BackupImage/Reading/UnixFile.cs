using BackupFuse.Core.Native;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - How every backup image is opened: stat first and refuse anything but a regular file without opening it (a device
//   node may have side effects on open), then open(2) with O_NONBLOCK so that a file swapped for a FIFO in between
//   can never block the caller (File.OpenHandle would wait for a writer forever, in an unkillable sleep), fstat the
//   descriptor and refuse again if it is not a regular file, then clear O_NONBLOCK (it has no meaning for regular
//   files, but a network or FUSE file system might pass it on).
// - What was opened is reported from the descriptor itself (fstat, and its path: /proc/self/fd/N on Linux,
//   F_GETPATH on macOS), so access rules check the very file that is read, never a path that may have changed since.
// - The calls go through Core.Native.PosixCalls (canonical flags, struct stat and errno on every platform).
// - Errors become the usual .NET exceptions with one clear message naming the path: FileNotFoundException (ENOENT,
//   ENOTDIR), UnauthorizedAccessException (EACCES, EPERM), IOException (anything else, "not a regular file").

/// <summary>Safe opening and stat of image files (never blocks on a FIFO; regular files only).</summary>
public static class UnixFile
{
    private const int ENoEnt = 2;
    private const int EPerm = 1;
    private const int EAcces = 13;
    private const int ENotDir = 20;

    /// <summary>stat(2) of <paramref name="path"/> (symlinks followed), or null if it cannot be stat'ed.</summary>
    public static UnixFileStat? TryStat(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return PosixCalls.Stat(path, out var st) ? Convert(st) : null;
    }

    /// <summary>
    /// Opens <paramref name="path"/> for reading if it is a regular file, without ever blocking on a FIFO or device;
    /// <paramref name="status"/> describes the file actually opened.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission denied.</exception>
    /// <exception cref="IOException">Not a regular file, or another error.</exception>
    public static SafeFileHandle OpenRegular(string path, out ImageFileStatus status)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!PosixCalls.Stat(path, out var before))
        {
            throw Error(path, PosixCalls.LastErrno());
        }

        RequireRegular(path, Convert(before));
        int fd = PosixCalls.Open(path, PosixCalls.ORdOnly | PosixCalls.ONonBlock | PosixCalls.ONoCtty | PosixCalls.OCloExec);
        if (fd < 0)
        {
            throw Error(path, PosixCalls.LastErrno());
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (!PosixCalls.Fstat(fd, out var after))
            {
                throw Error(path, PosixCalls.LastErrno());
            }

            var st = Convert(after);
            RequireRegular(path, st);
            if (PosixCalls.SetStatusFlags(fd, 0) != 0)
            {
                throw Error(path, PosixCalls.LastErrno());
            }

            string real = PosixCalls.DescriptorPath(fd)
                ?? throw new IOException($"{path}: cannot tell the real path of the opened file");
            status = new ImageFileStatus(real, st);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static void RequireRegular(string path, UnixFileStat st)
    {
        if (!st.IsRegularFile)
        {
            throw new IOException($"{path}: not a regular file (it is a {st.TypeName})");
        }
    }

    private static Exception Error(string path, int errno) => errno switch
    {
        ENoEnt or ENotDir => new FileNotFoundException($"{path}: no such file", path),
        EAcces or EPerm => new UnauthorizedAccessException($"{path}: permission denied"),
        _ => new IOException($"{path}: {PosixCalls.Describe(errno)}"),
    };

    private static UnixFileStat Convert(in CanonicalStat st) =>
        new(new FileIdentity(st.Device, st.Inode, st.Size, st.ModifySeconds, st.ModifyNanoseconds), st.Uid, st.Gid, st.Mode)
        {
            ChangedUnixNs = (st.ChangeSeconds * 1_000_000_000) + st.ChangeNanoseconds,
        };
}
