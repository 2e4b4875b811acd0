namespace BackupFuse.Fuse;

// Design notes:
// - This is the ONE place in the code base that knows errno numbers (linux values, the canonical ones on every
//   platform). Layers below throw the standard exceptions; libc failures inside this project throw ErrnoException
//   carrying the exact errno, read back canonically (LibC.LastError); FuseCallbacks turns From's result into the
//   platform's number (NativeAbi.Errno) at the libfuse boundary.
// - From() is what every [UnmanagedCallersOnly] callback returns from its catch block, so every request gets an
//   answer: an exception never escapes into libfuse (that would terminate the process).
// - The mapping is an ordered table of (exception type, errno, log level); the first type that matches wins, so
//   subclasses come before their bases (FileNotFoundException before IOException).
// - Logging: expected outcomes of path operations (an ErrnoException such as ENOENT from a lookup) are logged at
//   Debug; everything else is one line at Warning (mapped) or Error (unexpected type → EIO) naming the operation
//   and the path.

/// <summary>errno values and the exception → errno mapping used at the FUSE boundary.</summary>
public static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int EXDEV = 18;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int EINVAL = 22;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int EROFS = 30;
    public const int ERANGE = 34;
    public const int ENAMETOOLONG = 36;
    public const int ENOSYS = 38;
    public const int ENOTEMPTY = 39;
    public const int ELOOP = 40;
    public const int EOPNOTSUPP = 95;
    public const int ECONNABORTED = 103;

    private static readonly (Type Type, int Errno, FuseLogLevel Level)[] Table =
    [
        (typeof(FileNotFoundException), ENOENT, FuseLogLevel.Warning),
        (typeof(DirectoryNotFoundException), ENOENT, FuseLogLevel.Warning),
        (typeof(PathTooLongException), ENAMETOOLONG, FuseLogLevel.Warning),
        (typeof(UnauthorizedAccessException), EACCES, FuseLogLevel.Warning),
        (typeof(InvalidDataException), EIO, FuseLogLevel.Warning),
        (typeof(IOException), EIO, FuseLogLevel.Warning),
        (typeof(NotSupportedException), EROFS, FuseLogLevel.Warning),
        (typeof(ArgumentException), EINVAL, FuseLogLevel.Warning), // includes ArgumentOutOfRangeException
        (typeof(OperationCanceledException), EINTR, FuseLogLevel.Debug),
        (typeof(OutOfMemoryException), ENOMEM, FuseLogLevel.Error),
    ];

    /// <summary>The errno an exception stands for (positive), without logging.</summary>
    public static int Of(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is ErrnoException errnoException)
        {
            return errnoException.Errno;
        }

        foreach (var (type, errno, _) in Table)
        {
            if (type.IsInstanceOfType(exception))
            {
                return errno;
            }
        }

        return EIO;
    }

    /// <summary>Maps <paramref name="exception"/> to a negative errno for libfuse and logs it once.</summary>
    public static int From(Exception exception, IFuseLog? log, string operation, string? path)
    {
        ArgumentNullException.ThrowIfNull(exception);
        int errno = EIO;
        var level = FuseLogLevel.Error;
        if (exception is ErrnoException errnoException)
        {
            errno = errnoException.Errno;
            level = FuseLogLevel.Debug;
        }
        else
        {
            foreach (var (type, e, l) in Table)
            {
                if (type.IsInstanceOfType(exception))
                {
                    (errno, level) = (e, l);
                    break;
                }
            }
        }

        if (log != null && log.IsEnabled(level))
        {
            log.Log(level, $"{operation} {path ?? "(open file)"}: {Name(errno)}: {exception.Message}", level >= FuseLogLevel.Warning ? exception : null);
        }

        return -errno;
    }

    /// <summary>A short symbolic name for log lines.</summary>
    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        ENXIO => "ENXIO",
        EBADF => "EBADF",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ENOTEMPTY => "ENOTEMPTY",
        ELOOP => "ELOOP",
        EOPNOTSUPP => "EOPNOTSUPP",
        _ => "errno " + errno,
    };
}
