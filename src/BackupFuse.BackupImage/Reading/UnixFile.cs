using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Reading;

// Design notes:
// - How every backup image is opened: stat first and refuse anything but a regular file without opening it (a device
//   node may have side effects on open), then open(2) with O_NONBLOCK so that a file swapped for a FIFO in between
//   can never block the caller (File.OpenHandle would wait for a writer forever, in an unkillable sleep), fstat the
//   descriptor and refuse again if it is not a regular file, then clear O_NONBLOCK (it has no meaning for regular
//   files, but a network or FUSE file system might pass it on).
// - What was opened is reported from the descriptor itself (fstat, readlink of /proc/self/fd/N), so access rules
//   check the very file that is read, never a path that may have changed since.
// - linux-x64 struct stat layout (like the FUSE interop of this project); glibc >= 2.33 exports stat and fstat.
// - Errors become the usual .NET exceptions with one clear message naming the path: FileNotFoundException (ENOENT,
//   ENOTDIR), UnauthorizedAccessException (EACCES, EPERM), IOException (anything else, "not a regular file").

/// <summary>Safe opening and stat of image files (never blocks on a FIFO; regular files only).</summary>
public static partial class UnixFile
{
    private const int ORdOnly = 0x0;
    private const int ONonBlock = 0x800;
    private const int ONoCtty = 0x100;
    private const int OCloExec = 0x80000;
    private const int FSetFl = 4;
    private const int ENoEnt = 2;
    private const int EPerm = 1;
    private const int EAcces = 13;
    private const int ENotDir = 20;

    /// <summary>stat(2) of <paramref name="path"/> (symlinks followed), or null if it cannot be stat'ed.</summary>
    public static UnixFileStat? TryStat(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return stat(path, out var st) == 0 ? Convert(st) : null;
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
        if (stat(path, out var before) != 0)
        {
            throw Error(path, Marshal.GetLastPInvokeError());
        }

        RequireRegular(path, Convert(before));
        int fd = open(path, ORdOnly | ONonBlock | ONoCtty | OCloExec);
        if (fd < 0)
        {
            throw Error(path, Marshal.GetLastPInvokeError());
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (fstat(fd, out var after) != 0)
            {
                throw Error(path, Marshal.GetLastPInvokeError());
            }

            var st = Convert(after);
            RequireRegular(path, st);
            if (fcntl(fd, FSetFl, 0) != 0)
            {
                throw Error(path, Marshal.GetLastPInvokeError());
            }

            string real = new FileInfo("/proc/self/fd/" + fd.ToString(CultureInfo.InvariantCulture)).LinkTarget
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
        _ => new IOException($"{path}: {Marshal.GetPInvokeErrorMessage(errno)}"),
    };

    private static UnixFileStat Convert(in NativeStat st) =>
        new(new FileIdentity(st.Device, st.Inode, st.Size, st.ModifySeconds, st.ModifyNanoseconds), st.Uid, st.Gid, st.Mode);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int stat(string path, out NativeStat buf);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat(int fd, out NativeStat buf);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    /// <summary>struct stat on linux-x64 (144 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 144)]
    private struct NativeStat
    {
        [FieldOffset(0)] public ulong Device;
        [FieldOffset(8)] public ulong Inode;
        [FieldOffset(24)] public uint Mode;
        [FieldOffset(28)] public uint Uid;
        [FieldOffset(32)] public uint Gid;
        [FieldOffset(48)] public long Size;
        [FieldOffset(88)] public long ModifySeconds;
        [FieldOffset(96)] public long ModifyNanoseconds;
    }
}
