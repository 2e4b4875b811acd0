using System.Buffers.Binary;
using System.Text;
using BackupFuse.Core;

namespace BackupFuse.Vhdx.Formats;

// Design notes:
// - The few bytes of a synthesized format file that hypervisors rewrite in place: QEMU rewrites a VMDK's embedded
//   descriptor (a new CID) on the first write after every open (checked with qemu-io 7.2: the 10 KiB from byte 512);
//   other writers may set the VMDK header's unclean-shutdown byte or update a VHD's footer (not checked: no VMware or
//   VirtualBox here). Those bytes must read back as written, so they are kept byte-exact in a
//   small scratch area of the file below (a reserved, never-read area of the synthesized VHDX, whose writes go to the
//   changes file's patch store like any other non-payload write) and survive remounts with the changes.
// - Scratch layout: sector 0 is a tag ("BFREGION", u32 version 1, u32 region length, the region's label in UTF-8,
//   zero padded); the region's bytes follow from byte 512. Until the first write the tag is absent (the scratch reads
//   as zeros) and the region reads as its synthesized bytes. The first write stores the whole region, then the tag;
//   later writes store only the region. A tag with another label or length (a changes file from another format) is
//   ignored, and the next write replaces it.
// - Crash safety comes from the store: the region bytes are written before the tag, and the changes file's journal
//   keeps writes in order, so a durable tag always has its bytes; Flush of the file makes both durable.
// - The current bytes are held in memory (a region is at most a few KiB): reads never touch the store after the load.
// - Threading: one lock around loads, reads and writes (rare, tiny). A failed store write leaves the memory copy as
//   it was (the write is retried by the guest or reported).

/// <summary>A small region of a synthesized file whose writes are kept byte-exact in a scratch area of the file below.</summary>
public sealed class RewritableRegion
{
    /// <summary>Bytes of the tag sector in front of the stored region.</summary>
    public const int TagSize = 512;

    private const int LabelOffset = 16;
    private const int MaxLabelBytes = TagSize - LabelOffset;
    private static readonly byte[] Magic = "BFREGION"u8.ToArray();

    private readonly object _lock = new();
    private readonly IBlockSource _store;
    private readonly long _storeOffset;
    private readonly byte[] _tag;
    private byte[]? _current;
    private bool _tagged;
    private bool _dirty;

    /// <summary>
    /// A region whose synthesized bytes are <paramref name="initial"/>, stored in <paramref name="store"/> from
    /// <paramref name="storeOffset"/> on (<see cref="StoreLength"/> bytes, nothing else may use them).
    /// </summary>
    /// <param name="label">What the region is (e.g. "vmdk-header"); a stored region with another label is ignored.</param>
    /// <param name="initial">The synthesized bytes (copied).</param>
    /// <param name="store">The file holding the scratch area (not owned).</param>
    /// <param name="storeOffset">Where the scratch area starts.</param>
    public RewritableRegion(string label, ReadOnlySpan<byte> initial, IBlockSource store, long storeOffset)
    {
        ArgumentNullException.ThrowIfNull(label);
        _store = store ?? throw new ArgumentNullException(nameof(store));
        if (Encoding.UTF8.GetByteCount(label) > MaxLabelBytes || initial.IsEmpty)
        {
            throw new ArgumentException("label too long or empty region", nameof(label));
        }

        if (storeOffset < 0 || storeOffset > store.Length - StoreLength(initial.Length))
        {
            throw new ArgumentOutOfRangeException(nameof(storeOffset), $"scratch area {storeOffset}+{StoreLength(initial.Length)} lies outside the store's {store.Length} bytes");
        }

        _storeOffset = storeOffset;
        Initial = initial.ToArray();
        _tag = new byte[TagSize];
        Magic.CopyTo(_tag, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(_tag.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(_tag.AsSpan(12), (uint)initial.Length);
        Encoding.UTF8.GetBytes(label, _tag.AsSpan(LabelOffset));
    }

    /// <summary>Length of the region.</summary>
    public int Length => Initial.Length;

    /// <summary>The synthesized bytes (what the region holds until its first write).</summary>
    public ReadOnlyMemory<byte> Initial { get; }

    /// <summary>Whether the store holds a written copy of the region.</summary>
    public bool IsRewritten
    {
        get
        {
            lock (_lock)
            {
                Load();
                return _tagged;
            }
        }
    }

    /// <summary>Bytes of scratch a region of <paramref name="regionLength"/> bytes needs.</summary>
    public static long StoreLength(int regionLength) => TagSize + BlockAlignment.AlignUp(regionLength, TagSize);

    /// <summary>Copies the region's current bytes from <paramref name="offset"/> into <paramref name="buffer"/>.</summary>
    public void Read(int offset, Span<byte> buffer)
    {
        lock (_lock)
        {
            Load().AsSpan(offset, buffer.Length).CopyTo(buffer);
        }
    }

    /// <summary>Stores <paramref name="data"/> at <paramref name="offset"/> of the region.</summary>
    public void Write(int offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            var next = (byte[])Load().Clone();
            data.CopyTo(next.AsSpan(offset));
            if (_tagged)
            {
                _store.Write(_storeOffset + TagSize + offset, data);
            }
            else
            {
                _store.Write(_storeOffset + TagSize, next);
                _store.Write(_storeOffset, _tag);
                _tagged = true;
            }

            _current = next;
            _dirty = true;
        }
    }

    /// <summary>Flushes the store when the region was written since the last flush (a store shared with the disk is flushed twice at most).</summary>
    public void Flush()
    {
        bool dirty;
        lock (_lock)
        {
            dirty = _dirty;
            _dirty = false;
        }

        if (dirty)
        {
            try
            {
                _store.Flush();
            }
            catch
            {
                _dirty = true;
                throw;
            }
        }
    }

    private byte[] Load()
    {
        if (_current != null)
        {
            return _current;
        }

        Span<byte> tag = stackalloc byte[TagSize];
        _store.Read(_storeOffset, tag);
        var current = new byte[Initial.Length];
        if (tag.SequenceEqual(_tag))
        {
            _store.Read(_storeOffset + TagSize, current);
            _tagged = true;
        }
        else
        {
            Initial.Span.CopyTo(current);
        }

        return _current = current;
    }
}
