using System.Buffers.Binary;

namespace BackupFuse.Fuzz;

// Design notes:
// - VHDX files and file-system volumes are megabytes of mostly zeros; AFL takes inputs up to 1 MiB and is fast on
//   small ones. So those targets read a sparse encoding: u32 LE page count (4 KiB pages, capped), a bitmap of the
//   pages that are present (1 bit each, LSB first), then the present pages' bytes in order. Missing bytes (a short
//   input) are zeros. Encode makes it from a real file, so seeds are the project's own files, only squeezed.
// - The cap keeps a materialized file small (VHDX: written to tmpfs for every input).

/// <summary>The sparse page encoding of a large, mostly-zero file.</summary>
public sealed class SparseInput
{
    /// <summary>Page size of the encoding.</summary>
    public const int PageSize = 4096;

    private readonly Dictionary<long, ReadOnlyMemory<byte>> _pages = [];

    private SparseInput(long length) => Length = length;

    /// <summary>Length of the decoded file.</summary>
    public long Length { get; }

    /// <summary>Decodes <paramref name="input"/>; at most <paramref name="maxPages"/> pages (the page count is clamped).</summary>
    public static SparseInput Decode(byte[] input, long maxPages)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Length < 4)
        {
            return new SparseInput(0);
        }

        long pages = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input), maxPages);
        var result = new SparseInput(pages * PageSize);
        int bitmapLength = (int)((pages + 7) / 8);
        int data = 4 + bitmapLength;
        for (long p = 0; p < pages && data < input.Length; p++)
        {
            int at = 4 + (int)(p / 8);
            if (at < input.Length && (input[at] & (1 << (int)(p % 8))) != 0)
            {
                int n = Math.Min(PageSize, input.Length - data);
                result._pages[p] = input.AsMemory(data, n);
                data += n;
            }
        }

        return result;
    }

    /// <summary>The sparse encoding of <paramref name="file"/> (pages of zeros left out).</summary>
    public static byte[] Encode(ReadOnlySpan<byte> file)
    {
        long pages = (file.Length + PageSize - 1) / PageSize;
        var bitmap = new byte[(pages + 7) / 8];
        using var data = new MemoryStream();
        for (long p = 0; p < pages; p++)
        {
            var page = file.Slice((int)(p * PageSize), (int)Math.Min(PageSize, file.Length - (p * PageSize)));
            if (page.ContainsAnyExcept((byte)0))
            {
                bitmap[p / 8] |= (byte)(1 << (int)(p % 8));
                var full = new byte[PageSize];
                page.CopyTo(full);
                data.Write(full);
            }
        }

        var result = new byte[4 + bitmap.Length + data.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(result, (uint)pages);
        bitmap.CopyTo(result, 4);
        data.ToArray().CopyTo(result, 4 + bitmap.Length);
        return result;
    }

    /// <summary>Reads the decoded bytes at <paramref name="offset"/> (zeros where no page is present or past the end).</summary>
    public void Read(long offset, Span<byte> buffer)
    {
        buffer.Clear();
        while (!buffer.IsEmpty)
        {
            long page = offset / PageSize;
            int within = (int)(offset % PageSize);
            int n = Math.Min(buffer.Length, PageSize - within);
            if (_pages.TryGetValue(page, out var bytes) && within < bytes.Length)
            {
                bytes.Span.Slice(within, Math.Min(n, bytes.Length - within)).CopyTo(buffer);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Writes the decoded file to <paramref name="path"/> (sparse: only present pages are written).</summary>
    public void WriteTo(string path)
    {
        using var file = File.Open(path, FileMode.Create, FileAccess.Write);
        file.SetLength(Length);
        foreach (var (page, bytes) in _pages)
        {
            RandomAccess.Write(file.SafeFileHandle, bytes.Span, page * PageSize);
        }
    }
}
