using Microsoft.Win32.SafeHandles;

namespace BackupFuse.Core;

/// <summary>
/// A plain host file as a block source, through positional I/O (<see cref="RandomAccess"/> = pread/pwrite) on a
/// <see cref="SafeFileHandle"/>. No stream position exists, so any number of threads may read at once.
/// </summary>
public sealed class FileBlockSource : BlockSource
{
    private readonly SafeFileHandle _handle;
    private readonly bool _ownsHandle;
    private readonly bool _writable;
    private long _length;

    /// <summary>Opens <paramref name="path"/> read-only, or read-write when <paramref name="writable"/>.</summary>
    public FileBlockSource(string path, bool writable = false)
        : this(File.OpenHandle(path, FileMode.Open, writable ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite | FileShare.Delete), writable, ownsHandle: true)
    {
        Path = path;
    }

    /// <summary>Wraps an open handle.</summary>
    public FileBlockSource(SafeFileHandle handle, bool writable, bool ownsHandle)
    {
        _handle = handle ?? throw new ArgumentNullException(nameof(handle));
        _writable = writable;
        _ownsHandle = ownsHandle;
        _length = RandomAccess.GetLength(handle);
        Path = string.Empty;
    }

    /// <summary>The file's path, when opened by path.</summary>
    public string Path { get; }

    /// <summary>The handle, for callers that need the descriptor itself.</summary>
    public SafeFileHandle Handle => _handle;

    /// <inheritdoc/>
    public override long Length => Volatile.Read(ref _length);

    /// <inheritdoc/>
    public override int BlockSize => 4096;

    /// <inheritdoc/>
    public override bool CanWrite => _writable;

    /// <inheritdoc/>
    public override void Read(long offset, Span<byte> buffer)
    {
        AssertRange(offset, buffer.Length);
        ReadExactly(_handle, offset, buffer, Path);
    }

    /// <inheritdoc/>
    public override void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (!_writable)
        {
            base.Write(offset, data);
        }

        RandomAccess.Write(_handle, data, offset);
        long end = offset + data.Length;
        long seen;
        while (end > (seen = Volatile.Read(ref _length)) && Interlocked.CompareExchange(ref _length, end, seen) != seen)
        {
        }
    }

    /// <inheritdoc/>
    public override void Flush()
    {
        if (_writable)
        {
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes or throws: a short file is corrupt input.</summary>
    public static void ReadExactly(SafeFileHandle handle, long offset, Span<byte> buffer, string? pathForErrors = null)
    {
        ArgumentNullException.ThrowIfNull(handle);
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0)
            {
                throw new EndOfStreamException($"{(string.IsNullOrEmpty(pathForErrors) ? "file" : pathForErrors)}: unexpected end of file at offset {offset}");
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && _ownsHandle)
        {
            _handle.Dispose();
        }
    }
}
