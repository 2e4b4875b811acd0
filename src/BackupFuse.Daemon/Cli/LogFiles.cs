using System.Runtime.InteropServices;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Core.Native;
using BackupFuse.Fuse;
using BackupFuse.Fuse.Overlay;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - Where the background daemon logs when the user names no --log-file: under systemd (JOURNAL_STREAM or
//   INVOCATION_ID set) to standard error only, which is the journal; otherwise to one file per mount point in a
//   private directory: $LOGS_DIRECTORY or $STATE_DIRECTORY when systemd provides them, /var/log/backupfuse for root,
//   $XDG_STATE_HOME/backupfuse (default ~/.local/state/backupfuse) for other users. The file name comes from the
//   mount point (mount-<escaped path>.log), so a restarted daemon appends to the same file instead of leaving one
//   file per process id behind.
// - The directory is made 0700 when it is created and is checked every time (after opening it with O_NOFOLLOW):
//   a real directory owned by us, not writable by group or others. Nobody else can then plant a symlink or a
//   hard link in it. The check is on the open descriptor, and files are opened relative to it (openat), so a
//   directory swapped for a symlink between check and use is not followed either.
// - Every log file, default or --log-file, is opened with O_NOFOLLOW and must be a regular file: a symlink at
//   the path is refused with one line, never followed. New files are made 0600 (the log names images and paths).
//   The directory of a user-chosen --log-file is the user's choice and is not checked.
// - Serilog's own File sink opens its path with FileStream (following symlinks) and names rolled files itself,
//   so it is not used; BoundedLogFileSink writes to the handle opened here and rolls over through this class.
// - Stat and the user id come from the FUSE binding's typed interop (UnderlyingDirectory); opens go through
//   Core.Native.PosixCalls (canonical flags and errno on every platform).

/// <summary>Finds the default log file of a mount and opens log files without following symbolic links.</summary>
public static partial class LogFiles
{
    private const int O_WRONLY = PosixCalls.OWrOnly;
    private const int O_CREAT = PosixCalls.OCreat;
    private const int O_EXCL = PosixCalls.OExcl;
    private const int O_APPEND = PosixCalls.OAppend;
    private const int O_DIRECTORY = PosixCalls.ODirectory;
    private const int O_NOFOLLOW = PosixCalls.ONoFollow;
    private const int O_CLOEXEC = PosixCalls.OCloExec;

    /// <summary>Whether this process runs under systemd, whose journal then keeps standard error.</summary>
    public static bool UnderSystemd =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")) || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("INVOCATION_ID"));

    /// <summary>The directory default log files go to (see the design notes for the order of choices).</summary>
    public static string DefaultDirectory()
    {
        foreach (string variable in new[] { "LOGS_DIRECTORY", "STATE_DIRECTORY" })
        {
            // systemd passes a colon-separated list when the unit names several directories; the first is ours.
            string? value = Environment.GetEnvironmentVariable(variable)?.Split(':')[0];
            if (!string.IsNullOrEmpty(value))
            {
                return Path.GetFullPath(value);
            }
        }

        if (UnderlyingDirectory.CurrentUserId == 0)
        {
            return "/var/log/backupfuse";
        }

        string? state = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        if (string.IsNullOrEmpty(state) || !Path.IsPathRooted(state))
        {
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (string.IsNullOrEmpty(home))
            {
                throw new CliError("cannot choose a log directory: neither XDG_STATE_HOME nor HOME is set; pass --log-file");
            }

            state = Path.Combine(home, ".local", "state");
        }

        return Path.Combine(state, "backupfuse");
    }

    /// <summary>
    /// The file name for the log of a mount at <paramref name="mountPoint"/>: <c>mount-srv-vms.log</c> for
    /// <c>/srv/vms</c>. Letters, digits and dots stay, '/' becomes '-', every other byte becomes <c>_xx</c> (hex), so
    /// two mount points never share a name; very long paths are shortened with a hash.
    /// </summary>
    public static string FileNameFor(string mountPoint)
    {
        string path = Path.GetFullPath(mountPoint).Trim('/');
        var name = new StringBuilder();
        foreach (byte b in Encoding.UTF8.GetBytes(path))
        {
            char c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c == '.')
            {
                name.Append(c);
            }
            else if (c == '/')
            {
                name.Append('-');
            }
            else
            {
                name.Append('_').Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        string escaped = name.Length == 0 ? "-" : name.ToString();
        if (escaped.Length > 200)
        {
            string hash = Convert.ToHexStringLower(IdentityHash.HashData(Encoding.UTF8.GetBytes(path)))[..16];
            escaped = escaped[..200] + "_" + hash;
        }

        return $"mount-{escaped}.log";
    }

    /// <summary>The default log file of a mount: <see cref="FileNameFor"/> in <see cref="DefaultDirectory"/>.</summary>
    public static string DefaultPathFor(string mountPoint) => Path.Combine(DefaultDirectory(), FileNameFor(mountPoint));

    /// <summary>
    /// Creates <paramref name="directory"/> (mode 0700, parents as needed) unless it exists, and checks that it is a
    /// real directory owned by this user that group and others cannot write. Throws <see cref="CliError"/> otherwise.
    /// </summary>
    public static void EnsurePrivateDirectory(string directory)
    {
        directory = Path.GetFullPath(directory);
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("log directories are Linux-only");
        }

        if (!Directory.Exists(directory) && !File.Exists(directory))
        {
            string? parent = Path.GetDirectoryName(directory);
            if (parent != null)
            {
                Directory.CreateDirectory(parent);
            }

            try
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            catch (IOException) when (Directory.Exists(directory))
            {
                // Created by a concurrent daemon: checked below like any existing directory.
            }
        }

        using var fd = OpenPrivateDirectory(directory);
    }

    /// <summary>
    /// Opens <paramref name="path"/> for appending without following a symbolic link at it; creates it 0600 when it is
    /// missing (only creates, never opens an existing file, when <paramref name="createNew"/>). When
    /// <paramref name="privateDirectory"/> is set the file's directory must pass <see cref="EnsurePrivateDirectory"/>
    /// and the file must be owned by this user. Throws <see cref="CliError"/> naming the file on refusal.
    /// </summary>
    public static SafeFileHandle OpenForAppend(string path, bool privateDirectory, bool createNew = false)
    {
        path = Path.GetFullPath(path);
        int flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (createNew ? O_EXCL : 0);
        SafeFileHandle file;
        if (privateDirectory)
        {
            using var dir = OpenPrivateDirectory(Path.GetDirectoryName(path)!);
            file = PosixCalls.OpenAt(dir, Path.GetFileName(path), flags, 0x180);
        }
        else
        {
            file = PosixCalls.OpenAt(null, path, flags, 0x180);
        }

        if (file.IsInvalid)
        {
            int errno = PosixCalls.LastErrno();
            file.Dispose();
            throw new CliError(errno == Errno.ELOOP
                ? $"{path}: refusing to log to a symbolic link (remove it, or pass another --log-file)"
                : $"{path}: cannot open the log file: {PosixCalls.Describe(errno)}");
        }

        var stat = Stat(file, path);
        if (!stat.IsRegularFile || (privateDirectory && stat.Uid != UnderlyingDirectory.CurrentUserId))
        {
            file.Dispose();
            throw new CliError($"{path}: refusing to log there: not a regular file of this user");
        }

        return file;
    }

    private static SafeFileHandle OpenPrivateDirectory(string directory)
    {
        var fd = PosixCalls.OpenAt(null, directory, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd.IsInvalid)
        {
            int errno = PosixCalls.LastErrno();
            fd.Dispose();
            throw new CliError(errno is Errno.ELOOP or Errno.ENOTDIR
                ? $"{directory}: refusing to keep logs there: not a real directory (a symbolic link or a file)"
                : $"{directory}: cannot open the log directory: {PosixCalls.Describe(errno)}");
        }

        var stat = Stat(fd, directory);
        if (!stat.IsDirectory || stat.Uid != UnderlyingDirectory.CurrentUserId || (stat.Mode & 0x12) != 0)
        {
            fd.Dispose();
            throw new CliError($"{directory}: refusing to keep logs there: it must be a directory of this user that group and others cannot write (chmod 700 it)");
        }

        return fd;
    }

    private static UnderlyingFileStat Stat(SafeFileHandle fd, string path)
    {
        try
        {
            return UnderlyingDirectory.GetStat(fd, path);
        }
        catch (ErrnoException e)
        {
            throw new CliError($"{path}: cannot stat: {e.Message}");
        }
    }


}
