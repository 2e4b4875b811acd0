using System.Collections.Concurrent;

namespace BackupFuse.BackupImage.Storage.Caching;

// Design notes:
// - The background work of an ImageCache (readahead, prefetch): one queue feeding a fixed number of dedicated threads
//   (ImageCacheOptions.BackgroundFetches), so background fetches never take thread-pool threads from readers. A
//   request is cut into runs of at most MaxRequestBytes; each run is fetched by CachedImageObject.RunBackground.
// - Enqueue after Dispose (or on a closed object) drops the rest of the request quietly: background work is only a
//   hint. Dispose stops taking work, lets the threads finish what they hold and waits for them.
// - Thread-safe (BlockingCollection).

/// <summary>A queue of background block fetches served by dedicated threads.</summary>
internal sealed class BackgroundFetchQueue : IDisposable
{
    private readonly BlockingCollection<BackgroundWork> _work = new();
    private readonly Thread[] _workers;

    /// <summary>Starts <paramref name="threads"/> worker threads.</summary>
    public BackgroundFetchQueue(int threads)
    {
        _workers = new Thread[threads];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(RunWorker) { IsBackground = true, Name = "bf-cache-fetch" };
            _workers[i].Start();
        }
    }

    /// <summary>Queues a fetch of blocks <paramref name="from"/>..<paramref name="to"/> for <paramref name="owner"/>, in runs of at most <paramref name="maxRun"/> blocks.</summary>
    public void Enqueue(CachedImageObject owner, long from, long to, int maxRun)
    {
        for (long b = from; b <= to; b += maxRun)
        {
            try
            {
                if (!owner.IsOpen || !_work.TryAdd(new BackgroundWork(owner, b, Math.Min(to, b + maxRun - 1))))
                {
                    return;
                }
            }
            catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
            {
                return; // the cache is being disposed
            }
        }
    }

    /// <summary>Stops taking work and waits for the threads to finish what they hold.</summary>
    public void Dispose()
    {
        _work.CompleteAdding();
        foreach (var t in _workers)
        {
            t.Join();
        }

        _work.Dispose();
    }

    private void RunWorker()
    {
        foreach (var work in _work.GetConsumingEnumerable())
        {
            work.Owner.RunBackground(work.From, work.To);
        }
    }

    private readonly record struct BackgroundWork(CachedImageObject Owner, long From, long To);
}
