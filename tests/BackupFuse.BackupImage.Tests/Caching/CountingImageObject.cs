using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.BackupImage.Tests.Caching;

/// <summary>
/// A test decorator around a real image object: counts reads and bytes, remembers the ranges read, can delay every
/// read, fail while <see cref="Failing"/> is set, and flip a bit in the next read(s) of a chosen offset.
/// </summary>
internal sealed class CountingImageObject(IImageObject inner) : IImageObject
{
    private readonly object _lock = new();
    private readonly List<(long Offset, int Length)> _reads = [];
    private int _concurrent;
    private int _maxConcurrent;
    private int _corruptions;
    private long _corruptOffset = -1;
    private long _bytes;

    /// <summary>Delay added to every read.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>While true every read throws an IOException (a store that is down).</summary>
    public bool Failing { get; set; }

    /// <summary>Reads so far.</summary>
    public int Reads
    {
        get
        {
            lock (_lock)
            {
                return _reads.Count;
            }
        }
    }

    /// <summary>Bytes read so far.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Most reads seen in progress at once.</summary>
    public int MaxConcurrent => Volatile.Read(ref _maxConcurrent);

    public string Location => inner.Location;

    public long Length => inner.Length;

    public ImageFileStatus? LocalStatus => null;

    /// <summary>The next <paramref name="times"/> reads covering <paramref name="offset"/> return that byte with a bit flipped.</summary>
    public void CorruptNext(long offset, int times = 1)
    {
        lock (_lock)
        {
            _corruptOffset = offset;
            _corruptions = times;
        }
    }

    /// <summary>Reads that overlapped [offset, offset + length).</summary>
    public int ReadsOverlapping(long offset, long length)
    {
        lock (_lock)
        {
            return _reads.Count(r => r.Offset < offset + length && offset < r.Offset + r.Length);
        }
    }

    public void ResetCounters()
    {
        lock (_lock)
        {
            _reads.Clear();
        }

        Interlocked.Exchange(ref _bytes, 0);
        Volatile.Write(ref _maxConcurrent, 0);
    }

    public void ReadExactly(long offset, Span<byte> destination)
    {
        int now = Interlocked.Increment(ref _concurrent);
        try
        {
            int seen;
            while (now > (seen = Volatile.Read(ref _maxConcurrent)) && Interlocked.CompareExchange(ref _maxConcurrent, now, seen) != seen)
            {
            }

            lock (_lock)
            {
                _reads.Add((offset, destination.Length));
            }

            if (Delay > TimeSpan.Zero)
            {
                Thread.Sleep(Delay);
            }

            if (Failing)
            {
                throw new IOException($"{Location}: the store is down (test)");
            }

            inner.ReadExactly(offset, destination);
            Interlocked.Add(ref _bytes, destination.Length);
            lock (_lock)
            {
                if (_corruptions > 0 && _corruptOffset >= offset && _corruptOffset < offset + destination.Length)
                {
                    _corruptions--;
                    destination[(int)(_corruptOffset - offset)] ^= 0x10;
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _concurrent);
        }
    }

    public bool Refetch(long offset, long length) => inner.Refetch(offset, length);

    public void Prefetch(long offset, long length) => inner.Prefetch(offset, length);

    public void Dispose() => inner.Dispose();
}
