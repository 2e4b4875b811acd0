using System.Runtime.InteropServices;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - Why not Console.OpenStandardOutput: on Unix its Write treats EPIPE as success ("the reader went away, pretend it
//   worked"), so a backup into a pipe that closed early reported success with most of the image missing. .NET ignores
//   SIGPIPE, so the kernel's only signal is the EPIPE from write(2); here it is an IOException like any other error.
// - Writes straight to file descriptor 1 with write(2), looping over short writes and retrying EINTR, so every byte is
//   either delivered or the call throws. No buffering of its own: wrap it in a BufferedStream. Works on any kind of
//   descriptor (pipe, terminal, file, socket) without seeking; the descriptor is never closed.
// - Not thread-safe (one writer, like any Stream).

/// <summary>A forward-only stream over standard output (fd 1) that reports every failed or short write as an IOException.</summary>
public sealed partial class StandardOutputStream : Stream
{
    private const int StandardOutputFd = 1;
    private const int EINTR = 4;
    private const int EPIPE = 32;

    /// <summary>Opens standard output, buffered with <paramref name="bufferSize"/> bytes.</summary>
    public static Stream OpenBuffered(int bufferSize = 1 << 20) => new BufferedStream(new StandardOutputStream(), bufferSize);

    /// <inheritdoc/>
    public override bool CanRead => false;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <inheritdoc/>
    public override unsafe void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            nint n;
            fixed (byte* p = buffer)
            {
                n = write(StandardOutputFd, p, (nuint)buffer.Length);
            }

            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }

                throw new IOException(errno == EPIPE
                    ? "standard output was closed before everything was written (broken pipe: the reading program exited)"
                    : $"writing to standard output failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
            }

            if (n == 0)
            {
                throw new IOException("writing to standard output failed: nothing was written (short write)");
            }

            buffer = buffer[(int)n..];
        }
    }

    /// <inheritdoc/>
    public override void Flush()
    {
        // Nothing is buffered here.
    }

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);
}
