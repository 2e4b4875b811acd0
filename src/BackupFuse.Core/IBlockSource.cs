namespace BackupFuse.Core;

/// <summary>
/// A byte-addressable device read and written at positions. Every layer of the data path implements
/// this: backup images, the chain of them, caches, the synthesized VHDX and the differencing overlay.
/// </summary>
/// <remarks>
/// Contract, checked once at the top of a stack (the FUSE adapter or a command) and only asserted below:
/// <c>0 &lt;= offset</c> and <c>offset + buffer.Length &lt;= Length</c>. <see cref="Read"/> fills the whole
/// buffer or throws. Implementations are thread-safe: concurrent calls from several FUSE worker threads
/// are normal. Errors are exceptions: <see cref="InvalidDataException"/> for corrupt data (never wrong
/// bytes), <see cref="IOException"/> for the host, <see cref="NotSupportedException"/> for writes to a
/// read-only source.
/// </remarks>
public interface IBlockSource : IDisposable
{
    /// <summary>Size in bytes.</summary>
    long Length { get; }

    /// <summary>Preferred alignment of requests (a power of two), like QEMU's request_alignment.</summary>
    int BlockSize { get; }

    /// <summary>Whether <see cref="Write"/> is supported.</summary>
    bool CanWrite { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/>.</summary>
    void Read(long offset, Span<byte> buffer);

    /// <summary>Stores <paramref name="data"/> at <paramref name="offset"/>.</summary>
    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>Makes every completed write durable.</summary>
    void Flush();

    /// <summary>
    /// Status of the run that starts at <paramref name="offset"/>, in this layer only (QEMU block_status
    /// semantics): the returned extent starts at <paramref name="offset"/>, is at least one byte and at most
    /// <paramref name="maxLength"/> bytes long, and <see cref="ExtentKind.Unallocated"/> means "ask the layer below".
    /// </summary>
    Extent GetExtent(long offset, long maxLength);

    /// <summary>
    /// Whether reading just <paramref name="length"/> bytes at <paramref name="offset"/> is about a copy of that length:
    /// the bytes are stored as they read (nothing to decompress or decrypt) and no larger unit around them (a chunk
    /// checked whole) has to be read and checked. A cache above may then read such a range straight through instead
    /// of loading its whole block, and only such loads can count as cheap. A hint: reads are checked either way.
    /// </summary>
    bool ReadsPartCheaply(long offset, int length) => false;
}
