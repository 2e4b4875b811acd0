using System.Text;

namespace BackupFuse.Daemon.BootCheck;

// Design notes:
// - A console log QEMU appends to (serial port, firmware debug port), read incrementally: each Poll reads only the
//   bytes added since the last one. Bytes are taken as Latin-1 (never fails, one char per byte) with NULs and CRs
//   dropped, which is all the pattern matching needs.
// - Bounded: the guest controls what it prints, so only the last MaxTextChars characters are kept for matching (a
//   flooding guest costs neither memory nor ever-longer matches); the file itself is QEMU's and stays whole.
// - Used by one thread.

/// <summary>Follows a log file QEMU writes.</summary>
public sealed class ConsoleLog(string path)
{
    /// <summary>How much of the console's end is kept for matching (failure lines and --expect look at recent text).</summary>
    public const int MaxTextChars = 256 * 1024;

    private readonly StringBuilder _text = new();
    private long _offset;

    /// <summary>The file.</summary>
    public string Path => path;

    /// <summary>The last <see cref="MaxTextChars"/> characters read so far (everything, for a normal boot).</summary>
    public string Text => _text.ToString();

    /// <summary>Bytes read so far.</summary>
    public long Length => _offset;

    /// <summary>Reads what was appended; returns true when there was something.</summary>
    public bool Poll()
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (f.Length <= _offset)
        {
            return false;
        }

        f.Position = _offset;
        var buffer = new byte[Math.Min(f.Length - _offset, 1 << 20)];
        int n = f.Read(buffer);
        _offset += n;
        foreach (byte b in buffer.AsSpan(0, n))
        {
            if (b is not (0 or (byte)'\r'))
            {
                _text.Append((char)b);
            }
        }

        if (_text.Length > MaxTextChars)
        {
            _text.Remove(0, _text.Length - MaxTextChars);
        }

        return n > 0;
    }
}
