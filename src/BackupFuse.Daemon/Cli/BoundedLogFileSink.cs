using System.Text;
using Microsoft.Win32.SafeHandles;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace BackupFuse.Daemon.Cli;

// Design notes:
// - Writes each event as one line to a handle opened by LogFiles (O_NOFOLLOW, O_APPEND) and flushes it at once:
//   a daemon log is small and must survive a SIGKILL. Writes go to the current end of the file (the handle is
//   O_APPEND, so concurrent writers such as the parent of a background daemon never overwrite each other).
// - The size is bounded: once the file would exceed the limit it is renamed to <name>.1 (replacing the older one)
//   and a fresh file is created with O_EXCL|O_NOFOLLOW, so at most twice the limit is kept per log file. rename(2)
//   replaces a name and follows no symlink. If rolling over fails, one line goes to standard error and the file
//   gets no more lines (the bound holds); the console log is unaffected.
// - Thread-safe: one lock around format-free writes (formatting happens outside it).

/// <summary>A Serilog sink writing one line per event to a log file of bounded size (one rolled-over copy).</summary>
public sealed class BoundedLogFileSink : ILogEventSink, IDisposable
{
    private readonly object _gate = new();
    private readonly string _path;
    private readonly bool _privateDirectory;
    private readonly long _limit;
    private readonly ITextFormatter _formatter;
    private SafeFileHandle? _file;

    /// <summary>Opens <paramref name="path"/> (see <see cref="LogFiles.OpenForAppend"/>); throws <see cref="CliError"/> when refused.</summary>
    public BoundedLogFileSink(string path, bool privateDirectory, long limitBytes, ITextFormatter formatter)
    {
        _path = Path.GetFullPath(path);
        _privateDirectory = privateDirectory;
        _limit = limitBytes;
        _formatter = formatter;
        _file = LogFiles.OpenForAppend(_path, privateDirectory);
    }

    /// <summary>The size at which the file rolls over to <c>.1</c>.</summary>
    public long LimitBytes => _limit;

    /// <inheritdoc/>
    public void Emit(LogEvent logEvent)
    {
        var text = new StringWriter();
        _formatter.Format(logEvent, text);
        byte[] bytes = Encoding.UTF8.GetBytes(text.ToString());
        lock (_gate)
        {
            if (_file == null)
            {
                return;
            }

            try
            {
                long length = RandomAccess.GetLength(_file);
                if (length > 0 && length + bytes.Length > _limit)
                {
                    RollOver();
                    if (_file == null)
                    {
                        return;
                    }

                    length = 0;
                }

                RandomAccess.Write(_file, bytes, length);
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"warning: {_path}: cannot write the log file any more: {e.Message}");
                _file.Dispose();
                _file = null;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }

    private void RollOver()
    {
        try
        {
            File.Move(_path, _path + ".1", overwrite: true);
            var next = LogFiles.OpenForAppend(_path, _privateDirectory, createNew: true);
            _file!.Dispose();
            _file = next;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CliError)
        {
            Console.Error.WriteLine($"warning: {_path}: cannot roll the log file over ({e.Message}); no more lines go to it");
            _file!.Dispose();
            _file = null;
        }
    }
}
