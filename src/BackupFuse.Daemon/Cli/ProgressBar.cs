using System.Diagnostics;

namespace BackupFuse.Daemon.Cli;

/// <summary>
/// Progress for long work: a redrawn bar on a terminal (standard error), and a log line every few seconds when
/// standard error is not a terminal, so scripts and CI logs still see that work goes on.
/// Thread-safe: reports may come from worker threads.
/// </summary>
public sealed class ProgressBar : IDisposable
{
    private readonly string _label;
    private readonly bool _terminal = !Console.IsErrorRedirected;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _lock = new();
    private long _lastDrawMs = -1_000_000;
    private long _done;
    private long _total;
    private bool _drawn;

    /// <summary>Starts a bar labelled <paramref name="label"/>.</summary>
    public ProgressBar(string label)
    {
        _label = label;
    }

    /// <summary>Reports <paramref name="done"/> of <paramref name="total"/> bytes.</summary>
    public void Report(long done, long total)
    {
        lock (_lock)
        {
            _done = done;
            _total = total;
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDrawMs < (_terminal ? 100 : 5000) && done < total)
            {
                return;
            }

            _lastDrawMs = now;
            Draw();
        }
    }

    private void Draw()
    {
        double fraction = _total > 0 ? Math.Clamp((double)_done / _total, 0, 1) : 1;
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
        string rate = $"{_done / seconds / (1 << 20):F0} MiB/s";
        string text = $"{_label} {fraction * 100,5:F1}%  {Bytes.Format(_done)} of {Bytes.Format(_total)}  {rate}";
        if (_terminal)
        {
            const int width = 30;
            int filled = (int)(fraction * width);
            Console.Error.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {text}   ");
            _drawn = true;
        }
        else
        {
            Serilog.Log.Information("{Progress}", text);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_drawn)
            {
                Console.Error.WriteLine();
            }
        }
    }
}
