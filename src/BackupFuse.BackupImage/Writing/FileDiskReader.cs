using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - A regular file or a block device, read with pread (RandomAccess). The size comes from fstat, or for a block
//   device (fstat size 0) from lseek(SEEK_END), which Linux answers with the device size like BLKGETSIZE64.
// - Holes are found with lseek(SEEK_DATA/SEEK_HOLE) so a sparse 1 TiB file is read only where it has data. A file
//   system without SEEK_DATA (EINVAL) or a device simply reports everything as data. lseek moves the descriptor's
//   offset, which nothing else uses (all reads are positional); only the writer's reader thread calls it.

/// <summary>Source disk from a path: regular file or block device, with hole detection.</summary>
internal sealed partial class FileDiskReader : IDiskReader
{
    private const int SeekEnd = 2;
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int ENXIO = 6;

    private readonly SafeFileHandle _handle;
    private bool _holesSupported = true;

    public FileDiskReader(string path)
    {
        Name = path;
        try
        {
            _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot open source {path}: {e.Message}", e);
        }

        long length = RandomAccess.GetLength(_handle);
        if (length == 0)
        {
            length = Math.Max(0, lseek(Fd, 0, SeekEnd));
        }

        Length = length;
    }

    public string Name { get; }

    public long Length { get; }

    private int Fd => (int)_handle.DangerousGetHandle();

    public long NextData(long offset) => Seek(offset, SeekData, offset);

    public long NextHole(long offset) => Seek(offset, SeekHole, Length);

    private long Seek(long offset, int whence, long fallback)
    {
        if (offset >= Length)
        {
            return Length;
        }

        if (!_holesSupported)
        {
            return whence == SeekData ? offset : Length;
        }

        long r = lseek(Fd, offset, (BackupFuse.Core.Native.NativeAbi.Current ?? BackupFuse.Core.Native.NativeAbi.LinuxX64).Whence.ToNative(whence)); // macOS swaps SEEK_DATA/SEEK_HOLE
        if (r >= 0)
        {
            return Math.Min(r, Length);
        }

        int errno = BackupFuse.Core.Native.PosixCalls.LastErrno();
        if (errno == ENXIO)
        {
            return Length; // no data after offset (SEEK_DATA) / offset past the end
        }

        _holesSupported = false; // EINVAL and friends: treat the whole source as data
        return fallback;
    }

    public void Read(long offset, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int n;
            try
            {
                n = RandomAccess.Read(_handle, buffer, offset);
            }
            catch (IOException e)
            {
                throw new IOException($"cannot read source {Name} at offset {offset}: {e.Message}", e);
            }

            if (n <= 0)
            {
                throw new IOException($"source {Name} ended at offset {offset}, before its size {Length} (did it shrink during the backup?)");
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    public void Dispose() => _handle.Dispose();

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);
}
