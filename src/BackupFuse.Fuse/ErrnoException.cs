using System.Runtime.InteropServices;

namespace BackupFuse.Fuse;

/// <summary>A failure that already is an errno (a libc call failed, or a FUSE rule demands a specific errno).</summary>
public sealed class ErrnoException : IOException
{
    /// <summary>Creates the exception for <paramref name="errno"/> (positive).</summary>
    public ErrnoException(int errno, string message)
        : base($"{message}: {Fuse.Errno.Name(errno)} ({Marshal.GetPInvokeErrorMessage(errno)})")
    {
        Errno = errno;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public ErrnoException()
        : this(Fuse.Errno.EIO, "I/O error")
    {
    }

    /// <summary>Creates the exception with a message, as EIO.</summary>
    public ErrnoException(string message)
        : this(Fuse.Errno.EIO, message)
    {
    }

    /// <summary>Creates the exception with a message and inner exception, as EIO.</summary>
    public ErrnoException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errno = Fuse.Errno.EIO;
    }

    /// <summary>The errno value (positive).</summary>
    public int Errno { get; }

    /// <summary>The exception for the errno the last P/Invoke (declared with SetLastError) left behind.</summary>
    public static ErrnoException FromLastError(string operation, string? path = null)
    {
        int errno = Interop.LibC.LastError();
        return new ErrnoException(errno == 0 ? Fuse.Errno.EIO : errno, path == null ? operation : $"{operation} {path}");
    }
}
