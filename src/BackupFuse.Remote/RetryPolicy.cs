using System.Diagnostics;

namespace BackupFuse.Remote;

// Design notes:
// - One retry loop for every remote request (S3 and HTTP, reads, listings, uploads), so that every request has a
//   timeout (nothing hangs), transient failures are retried the same way, and every failure that stands becomes ONE
//   exception with one line: "<what>: <reason> (after N attempts in S s)". <what> names the object URL and the
//   offset; it never holds a credential or a signed query (RemoteLocation refuses both).
// - Backoff: exponential with full jitter (AWS's recommendation): the n-th wait is uniform in [0, min(MaxDelay,
//   FirstDelay * 2^n)], so many readers that failed together do not come back together. The loop gives up when the
//   next wait would pass Deadline (counted from the first attempt), so a read fails within about Deadline + one
//   RequestTimeout.
// - Classification belongs to the caller (S3 error codes differ from HTTP statuses): NotFound becomes
//   FileNotFoundException, everything else IOException. A timeout of an attempt (RequestTimeout) is transient.
// - Synchronous on purpose: IImageObject.ReadExactly is synchronous, and its callers are often thread-pool threads
//   (verify's Parallel.For, the cache's parallel loads). Reads therefore use RunSync with synchronous HTTP
//   (HttpClient.Send: no thread-pool thread is needed for the answer); waiting here on an asynchronous attempt
//   starved the pool under parallel reads (every answer queued behind the blocked readers until the timeouts).
//   Run (waits for an asynchronous attempt) is for rare calls (listing, starting and completing an upload); upload
//   parts use RunAsync and block no thread. Thread-safe (no state but the settings).

/// <summary>Retries a remote request with exponential backoff and full jitter, within a deadline.</summary>
public sealed class RetryPolicy
{
    /// <summary>The settings for reads and listings: 100 ms doubling to 5 s, 30 s in all, 15 s per attempt.</summary>
    public static RetryPolicy Default { get; } = new();

    /// <summary>First backoff (before the second attempt).</summary>
    public TimeSpan FirstDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest single backoff.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>No new attempt starts later than this after the first one.</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The slowest transfer rate (bytes per second) an attempt is given time for on top of <see cref="RequestTimeout"/>
    /// (TimeoutFor): an 8 MiB range on a slow link must not time out for its size alone.
    /// </summary>
    public long MinimumBytesPerSecond { get; init; } = 512 * 1024;

    /// <summary>The time one attempt that moves <paramref name="bytes"/> may take: RequestTimeout plus the bytes at MinimumBytesPerSecond.</summary>
    public TimeSpan TimeoutFor(long bytes) => RequestTimeout + TimeSpan.FromSeconds(Math.Max(0, bytes) / (double)MinimumBytesPerSecond);

    /// <summary>Longest time one attempt may take (connect, answer and body).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Runs the asynchronous <paramref name="attempt"/> (SDK calls: listings, uploads) until it succeeds, fails for
    /// good, or the deadline passes. <paramref name="what"/> starts every message. Not for reads on hot paths: a
    /// thread that waits here needs a free thread-pool thread for the answer (use the synchronous overload).
    /// </summary>
    /// <exception cref="FileNotFoundException">The object does not exist.</exception>
    /// <exception cref="IOException">Any other failure that stands.</exception>
    public T Run<T>(string what, Func<CancellationToken, Task<T>> attempt, Func<Exception, RemoteError?> classify, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        return RunSync(what, ct => attempt(ct).GetAwaiter().GetResult(), classify, cancellationToken);
    }

    /// <summary>
    /// Runs the synchronous <paramref name="attempt"/> until it succeeds, fails for good, or the deadline passes
    /// (e.g. "s3://b/k: read of 4096 bytes at offset 512"). The attempt must give up when its token is cancelled (the
    /// per-attempt timeout); whatever it throws then counts as a timeout.
    /// </summary>
    /// <exception cref="FileNotFoundException">The object does not exist.</exception>
    /// <exception cref="IOException">Any other failure that stands.</exception>
    public T RunSync<T>(string what, Func<CancellationToken, T> attempt, Func<Exception, RemoteError?> classify, CancellationToken cancellationToken = default, TimeSpan? attemptTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        ArgumentNullException.ThrowIfNull(classify);
        var clock = Stopwatch.StartNew();
        for (int n = 0; ; n++)
        {
            RemoteError error;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(attemptTimeout ?? RequestTimeout);
                try
                {
                    return attempt(timeout.Token);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    error = Classify(e, timeout.IsCancellationRequested, classify);
                }
            }

            var wait = Backoff(what, n, clock, error);
            if (cancellationToken.WaitHandle.WaitOne(wait))
            {
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
    }

    /// <summary>
    /// Runs the asynchronous <paramref name="attempt"/> without blocking a thread (upload parts on the thread pool);
    /// the same rules as <see cref="RunSync{T}"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The object does not exist.</exception>
    /// <exception cref="IOException">Any other failure that stands.</exception>
    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> attempt, Func<Exception, RemoteError?> classify, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        ArgumentNullException.ThrowIfNull(classify);
        var clock = Stopwatch.StartNew();
        for (int n = 0; ; n++)
        {
            RemoteError error;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(RequestTimeout);
                try
                {
                    return await attempt(timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    error = Classify(e, timeout.IsCancellationRequested, classify);
                }
            }

            await Task.Delay(Backoff(what, n, clock, error), cancellationToken).ConfigureAwait(false);
        }
    }

    private RemoteError Classify(Exception e, bool timedOut, Func<Exception, RemoteError?> classify) =>
        timedOut ? new RemoteError(RemoteErrorKind.Transient, $"no answer within {RequestTimeout.TotalSeconds:0.#} s")
        : e is RemoteAttemptException known ? known.Error
        // The exception itself is not kept: SDK and transport messages may quote request details.
        : classify(e) ?? RemoteError.FromTransport(e) ?? new RemoteError(RemoteErrorKind.Final, $"request failed ({e.GetType().Name})");

    /// <summary>The wait before attempt <paramref name="n"/> + 2, or throws the one exception when the failure stands.</summary>
    private TimeSpan Backoff(string what, int n, Stopwatch clock, RemoteError error)
    {
        var wait = TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * Math.Min(MaxDelay.TotalMilliseconds, FirstDelay.TotalMilliseconds * Math.Pow(2, n)));
        if (error.Kind != RemoteErrorKind.Transient || clock.Elapsed + wait > Deadline)
        {
            string tries = n == 0 ? string.Empty : $" (after {n + 1} attempts in {clock.Elapsed.TotalSeconds:0.#} s)";
            string message = $"{what}: {error.Reason}{tries}";
            throw error.Kind == RemoteErrorKind.NotFound ? new FileNotFoundException(message) : new IOException(message);
        }

        return wait;
    }
}
