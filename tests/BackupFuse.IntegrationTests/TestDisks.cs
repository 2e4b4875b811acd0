namespace BackupFuse.IntegrationTests;

/// <summary>
/// Raw disk images made of real files and zeros: runs of bytes taken from the files of this machine (/usr/lib,
/// /usr/share) placed at deterministic places, with zero gaps between them, so compression, zero detection and
/// holes all get exercised the way a real disk would.
/// </summary>
internal static class TestDisks
{
    private static readonly Lazy<string[]> SourceFiles = new(() =>
        [.. new[] { "/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/bin" }
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint }))
            .Where(f => new FileInfo(f).Length > 4096)
            .Order(StringComparer.Ordinal)]);

    /// <summary>Creates a sparse raw disk of <paramref name="size"/> bytes, about 60% filled with file data.</summary>
    public static void CreateMixed(string path, long size, int seed)
    {
        using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite);
        RandomAccess.SetLength(handle, size);
        var rng = new Random(seed);
        var files = SourceFiles.Value;
        long pos = 0;
        int fileIndex = rng.Next(files.Length);
        var buffer = new byte[1 << 20];
        while (pos < size)
        {
            // A run of data of 64 KiB .. 4 MiB, then a zero gap of 0 .. 3 MiB.
            long run = Math.Min(size - pos, rng.Next(64 * 1024, 4 << 20));
            long end = pos + run;
            while (pos < end)
            {
                string file = files[fileIndex++ % files.Length];
                byte[] data;
                try
                {
                    data = File.ReadAllBytes(file);
                }
                catch (IOException)
                {
                    continue;
                }
                catch (UnauthorizedAccessException)
                {
                    continue;
                }

                int n = (int)Math.Min(Math.Min(data.Length, end - pos), buffer.Length);
                RandomAccess.Write(handle, data.AsSpan(0, n), pos);
                pos += n;
            }

            pos += Math.Min(size - pos, rng.Next(0, 3 << 20));
        }
    }

    /// <summary>Overwrites <paramref name="count"/> scattered runs of random bytes (4 KiB .. 256 KiB each).</summary>
    public static void Scatter(string path, int count, int seed)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        long size = RandomAccess.GetLength(handle);
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var data = new byte[rng.Next(4096, 256 * 1024)];
            rng.NextBytes(data);
            RandomAccess.Write(handle, data, rng.NextInt64(size - data.Length));
        }
    }

    /// <summary>Whether two files have the same bytes.</summary>
    public static bool SameContent(string a, string b)
    {
        using var ha = File.OpenHandle(a);
        using var hb = File.OpenHandle(b);
        long length = RandomAccess.GetLength(ha);
        if (length != RandomAccess.GetLength(hb))
        {
            return false;
        }

        var ba = new byte[1 << 20];
        var bb = new byte[1 << 20];
        for (long pos = 0; pos < length; pos += ba.Length)
        {
            int n = (int)Math.Min(ba.Length, length - pos);
            RandomAccess.Read(ha, ba.AsSpan(0, n), pos);
            RandomAccess.Read(hb, bb.AsSpan(0, n), pos);
            if (!ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, n)))
            {
                return false;
            }
        }

        return true;
    }
}
