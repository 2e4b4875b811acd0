namespace BackupFuse.Core.FileSystems;

// Design notes:
// - The allocation both synthesized file systems (exFAT, FAT32) use: every entry that needs clusters (a directory's
//   entries, a file's content) gets ONE contiguous run, in tree order, starting at the first data cluster. So a FAT
//   entry, a bitmap bit or "which entry owns this cluster" is computed, never stored: the tables are synthesized for
//   whatever range a read asks for.
// - Memory: one long per entry (8 MB for a million entries); built in one pass. Immutable, thread-safe.

/// <summary>Contiguous cluster runs assigned to entries in order.</summary>
public sealed class ClusterRuns
{
    private readonly long[] _starts; // _starts[i] = first cluster of entry i; _starts[Count] = first cluster after all

    /// <summary>Assigns runs of <paramref name="clusterCounts"/>[i] clusters to entries 0..n-1 from <paramref name="firstCluster"/>.</summary>
    public ClusterRuns(IReadOnlyList<long> clusterCounts, long firstCluster)
    {
        ArgumentNullException.ThrowIfNull(clusterCounts);
        _starts = new long[clusterCounts.Count + 1];
        long next = firstCluster;
        for (int i = 0; i < clusterCounts.Count; i++)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(clusterCounts[i]);
            _starts[i] = next;
            next = checked(next + clusterCounts[i]);
        }

        _starts[^1] = next;
        FirstCluster = firstCluster;
    }

    /// <summary>Number of entries.</summary>
    public int Count => _starts.Length - 1;

    /// <summary>The first cluster of the first run.</summary>
    public long FirstCluster { get; }

    /// <summary>The first cluster after every run (FirstCluster + clusters used).</summary>
    public long EndCluster => _starts[^1];

    /// <summary>The first cluster of entry <paramref name="entry"/>'s run (meaningless when its count is 0).</summary>
    public long StartOf(int entry) => _starts[entry];

    /// <summary>How many clusters entry <paramref name="entry"/> has.</summary>
    public long CountOf(int entry) => _starts[entry + 1] - _starts[entry];

    /// <summary>The entry whose run holds <paramref name="cluster"/>, or -1 when it lies outside every run.</summary>
    public int EntryAt(long cluster)
    {
        if (cluster < FirstCluster || cluster >= EndCluster)
        {
            return -1;
        }

        // The last i with _starts[i] <= cluster: entries with empty runs share their start with the next one.
        int lo = 0, hi = Count - 1;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo + 1) / 2);
            if (_starts[mid] <= cluster)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }
}
