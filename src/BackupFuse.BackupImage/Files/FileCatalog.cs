using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using BackupFuse.Core;
using BackupFuse.Core.FileTrees;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - The parsed catalog of a file-level image (format: docs/format.md section 12.2), held compactly: one array per
//   field and one UTF-8 blob for names and symlink targets, about 60 bytes per entry plus its name, plus 32 bytes per
//   file for its SHA-256 when kept (a mount does not keep them: only an incremental's backup compares hashes). Names are decoded only in GetEntry. Per-kind reuse of slots: _size holds a symlink's target
//   length, _link a directory's first child or a file's ordinal in the hash table.
// - Parse treats the bytes as HOSTILE: every count is bounded by the bytes left, arrays grow only with entries actually
//   parsed (a catalog claiming a billion entries costs nothing before it runs out of bytes), the tree shape is checked
//   while reading (breadth-first: each entry's parent is the next directory with children left, so an entry without a
//   parent, a cycle or child counts that overflow the entry count cannot be represented), names are checked (valid
//   UTF-8, no '/' or NUL, not "." or "..", siblings strictly ascending in UTF-8 byte order, so no duplicates), every
//   file's data range lies in the data stream, and the CRC-32C at the end must match. Every failure is one
//   InvalidDataException line naming the image and the problem; nothing is ever trusted before it is checked.
// - Immutable after Parse; thread-safe.

/// <summary>The catalog of a file-level image: the tree, breadth-first, as <see cref="IFileTree"/> needs it.</summary>
public sealed class FileCatalog
{
    /// <summary>The catalog magic, "BFCATLG1".</summary>
    public static ReadOnlySpan<byte> Magic => "BFCATLG1"u8;

    /// <summary>Bytes before the first entry (magic, entry count, reserved).</summary>
    public const int PrefixLength = 16;

    /// <summary>Bytes of the trailing CRC-32C.</summary>
    public const int SuffixLength = 4;

    /// <summary>Fixed bytes of every entry (kind, mode, mtime, atime, name length).</summary>
    public const int EntryFixedLength = 1 + 4 + 8 + 8 + 2;

    /// <summary>Longest name accepted, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 1024;

    /// <summary>Longest symlink target accepted, in UTF-8 bytes.</summary>
    public const int MaxTargetBytes = 4096;

    /// <summary>Largest catalog accepted (names are indexed by 32-bit offsets).</summary>
    public const long MaxLength = int.MaxValue;

    private const int InitialCapacity = 1 << 16;

    private byte[] _kind = [];
    private uint[] _mode = [];
    private long[] _mtime = [];
    private long[] _atime = [];
    private long[] _size = [];
    private long[] _data = [];
    private int[] _nameStart = [];
    private ushort[] _nameLength = [];
    private int[] _link = [];
    private int[] _children = [];
    private int[] _parent = [];
    private byte[] _hashes = [];
    private byte[] _blob = [];

    private FileCatalog()
    {
    }

    /// <summary>Number of entries, the root included.</summary>
    public int Count { get; private set; }

    /// <summary>Regular files.</summary>
    public int FileCount { get; private set; }

    /// <summary>Directories, the root included.</summary>
    public int DirectoryCount { get; private set; }

    /// <summary>Symbolic links.</summary>
    public int SymlinkCount { get; private set; }

    /// <summary>Devices, FIFOs and sockets.</summary>
    public int OtherCount { get; private set; }

    /// <summary>Sum of the sizes of the files.</summary>
    public long ContentBytes { get; private set; }

    /// <summary>The entry at <paramref name="index"/>, its name decoded.</summary>
    public FileTreeEntry GetEntry(int index)
    {
        var kind = (FileTreeEntryKind)_kind[index];
        string name = Encoding.UTF8.GetString(_blob, _nameStart[index], _nameLength[index]);
        string? target = kind == FileTreeEntryKind.Symlink ? Encoding.UTF8.GetString(_blob, _nameStart[index] + _nameLength[index], (int)_size[index]) : null;
        bool dir = kind == FileTreeEntryKind.Directory;
        return new FileTreeEntry(name, kind, _parent[index], dir && _children[index] > 0 ? _link[index] : 0, dir ? _children[index] : 0,
            kind == FileTreeEntryKind.File ? _size[index] : 0, _mtime[index], _atime[index], _mode[index], target);
    }

    /// <summary>The name of entry <paramref name="index"/> ("" for the root), decoded.</summary>
    public string NameOf(int index) => Encoding.UTF8.GetString(_blob, _nameStart[index], _nameLength[index]);

    /// <summary>The kind of entry <paramref name="index"/>.</summary>
    public FileTreeEntryKind KindOf(int index) => (FileTreeEntryKind)_kind[index];

    /// <summary>Size of file <paramref name="index"/> (0 for anything else).</summary>
    public long SizeOf(int index) => _kind[index] == (byte)FileTreeEntryKind.File ? _size[index] : 0;

    /// <summary>Modification time of entry <paramref name="index"/>.</summary>
    public long ModifiedOf(int index) => _mtime[index];

    /// <summary>Stream offset of the content of file <paramref name="index"/>.</summary>
    public long DataOffsetOf(int index) => _data[index];

    /// <summary>Whether the content hashes were kept (see <see cref="Parse(FileContentReader, long, long, string, bool)"/>).</summary>
    public bool HasHashes { get; private set; }

    /// <summary>SHA-256 of the content of file <paramref name="index"/>.</summary>
    /// <exception cref="InvalidOperationException">The catalog was parsed without its hashes.</exception>
    public ReadOnlySpan<byte> HashOf(int index)
    {
        if (!HasHashes)
        {
            throw new InvalidOperationException("this catalog was parsed without its content hashes");
        }

        return _kind[index] == (byte)FileTreeEntryKind.File ? _hashes.AsSpan(_link[index] * 32, 32) : throw new ArgumentOutOfRangeException(nameof(index), "not a file");
    }

    /// <summary>The index of the entry at '/'-separated <paramref name="relativePath"/>, or -1.</summary>
    public int Find(string relativePath)
    {
        ArgumentNullException.ThrowIfNull(relativePath);
        int node = 0;
        foreach (var part in relativePath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (_kind[node] != (byte)FileTreeEntryKind.Directory)
            {
                return -1;
            }

            node = FindChild(node, Encoding.UTF8.GetBytes(part));
            if (node < 0)
            {
                return -1;
            }
        }

        return node;
    }

    /// <summary>The index of the child of directory <paramref name="directory"/> named <paramref name="name"/>, or -1.</summary>
    public int FindChild(int directory, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _kind[directory] == (byte)FileTreeEntryKind.Directory ? FindChild(directory, Encoding.UTF8.GetBytes(name)) : -1;
    }

    private int FindChild(int directory, ReadOnlySpan<byte> name)
    {
        int lo = _link[directory], hi = lo + _children[directory] - 1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) / 2);
            int c = NameBytesOf(mid).SequenceCompareTo(name);
            if (c == 0)
            {
                return mid;
            }

            if (c < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return -1;
    }

    private ReadOnlySpan<byte> NameBytesOf(int index) => _blob.AsSpan(_nameStart[index], _nameLength[index]);

    /// <summary>
    /// Parses the <paramref name="length"/> catalog bytes that <paramref name="read"/> gives from offset 0; file data must
    /// lie in [0, <paramref name="streamEnd"/>). <paramref name="name"/> is used in messages. Without
    /// <paramref name="keepHashes"/> the content hashes (32 bytes per file, needed only to back up an incremental
    /// against this catalog) are checked by the CRC but not kept.
    /// </summary>
    /// <exception cref="InvalidDataException">The catalog is damaged (one line naming the problem).</exception>
    public static FileCatalog Parse(FileContentReader read, long length, long streamEnd, string name, bool keepHashes = true)
    {
        ArgumentNullException.ThrowIfNull(read);
        try
        {
            return ParseCore(read, length, streamEnd, keepHashes);
        }
        catch (CatalogException e)
        {
            throw new InvalidDataException($"{name}: damaged file catalog: {e.Message}");
        }
    }

    /// <summary>Parses a catalog held in memory (tests and tools).</summary>
    public static FileCatalog Parse(byte[] catalog, long streamEnd, string name)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return Parse((offset, buffer) => catalog.AsSpan((int)offset, buffer.Length).CopyTo(buffer), catalog.Length, streamEnd, name);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // one-shot loops over every entry: no slow first tier
    private static FileCatalog ParseCore(FileContentReader read, long length, long streamEnd, bool keepHashes)
    {
        if (length < PrefixLength + EntryFixedLength + 4 + SuffixLength || length > MaxLength)
        {
            throw new CatalogException($"length {length} is out of range");
        }

        var c = new Cursor(read, length - SuffixLength);
        if (!c.Take(8).SequenceEqual(Magic))
        {
            throw new CatalogException("wrong magic (not a catalog, or the header points at the wrong place)");
        }

        uint count = c.U32();
        if (c.U32() != 0)
        {
            throw new CatalogException("reserved bytes are not zero");
        }

        long maxEntries = (length - PrefixLength - SuffixLength) / EntryFixedLength;
        if (count < 1 || count > maxEntries)
        {
            throw new CatalogException($"entry count {count} is impossible for a catalog of {length} bytes");
        }

        // Arrays grow only with entries actually parsed (a hostile count must not allocate), by 4x from 64k entries:
        // fewer generations of eleven arrays left on the large-object heap than doubling from 4096 (a million entries
        // allocate 1.33x their final size instead of 2x).
        var cat = new FileCatalog();
        cat.Grow((int)Math.Min(count, InitialCapacity));
        int blobLength = 0;
        long assigned = 1; // entries that have a parent slot, the root included
        int parentCursor = 0, parentLeft = 0;
        for (int i = 0; i < (int)count; i++)
        {
            if (i == cat._kind.Length)
            {
                cat.Grow((int)Math.Min(count, (long)i * 4));
            }

            byte kindByte = c.U8();
            uint mode = c.U32();
            long mtime = c.I64(), atime = c.I64();
            int nameLength = c.U16();
            if (kindByte > (byte)FileTreeEntryKind.Other)
            {
                throw new CatalogException($"{At(i)}: unknown kind {kindByte}");
            }

            var kind = (FileTreeEntryKind)kindByte;
            if (!ModeFits(kind, mode))
            {
                throw new CatalogException($"{At(i)}: mode 0{Convert.ToString(mode, 8)} does not fit a {kind}");
            }

            if (i == 0 ? kind != FileTreeEntryKind.Directory || nameLength != 0 : nameLength == 0 || nameLength > MaxNameBytes)
            {
                throw new CatalogException(i == 0 ? "the root is not a nameless directory" : $"{At(i)}: name length {nameLength} is out of range");
            }

            // Breadth-first: this entry's parent is the next directory (in index order) that still has children to give.
            int parent = 0;
            if (i > 0)
            {
                while (parentLeft == 0)
                {
                    parentCursor++;
                    if (parentCursor >= i)
                    {
                        throw new CatalogException($"{At(i)} is in no directory (child counts are inconsistent)");
                    }

                    parentLeft = cat._kind[parentCursor] == (byte)FileTreeEntryKind.Directory ? cat._children[parentCursor] : 0;
                }

                parent = parentCursor;
                parentLeft--;
            }
            else
            {
                parentLeft = 0;
            }

            var nameBytes = c.Take(nameLength);
            if (i > 0)
            {
                CheckName(nameBytes, i);
                if (i > 1 && cat._parent[i - 1] == parent && cat.NameBytesOf(i - 1).SequenceCompareTo(nameBytes) >= 0)
                {
                    throw new CatalogException($"{At(i)}: name '{Show(nameBytes)}' is not after its sibling '{Show(cat.NameBytesOf(i - 1))}' (unsorted or duplicate)");
                }
            }

            cat.AppendBlob(ref blobLength, nameBytes);
            cat._kind[i] = kindByte;
            cat._mode[i] = mode;
            cat._mtime[i] = mtime;
            cat._atime[i] = atime;
            cat._nameStart[i] = blobLength - nameLength;
            cat._nameLength[i] = (ushort)nameLength;
            cat._parent[i] = parent;
            switch (kind)
            {
                case FileTreeEntryKind.Directory:
                    uint children = c.U32();
                    if (assigned + children > count)
                    {
                        throw new CatalogException($"{At(i)}: {children} children overflow the {count} entries");
                    }

                    cat._link[i] = (int)assigned;
                    cat._children[i] = (int)children;
                    assigned += children;
                    cat.DirectoryCount++;
                    if (i == 0)
                    {
                        parentLeft = (int)children;
                    }

                    break;
                case FileTreeEntryKind.File:
                    long size = c.I64(), offset = c.I64();
                    if (size < 0 || offset < 0 || offset > streamEnd || size > streamEnd - offset)
                    {
                        throw new CatalogException($"{At(i)} ('{Show(cat.NameBytesOf(i))}'): data range {offset}+{size} lies outside the data stream (0..{streamEnd})");
                    }

                    int ordinal = cat.FileCount++;
                    var hash = c.Take(32);
                    if (keepHashes)
                    {
                        if ((ordinal + 1) * 32 > cat._hashes.Length)
                        {
                            Array.Resize(ref cat._hashes, (int)Math.Min(cat._kind.Length * 32L, Math.Max(InitialCapacity * 32L, cat._hashes.Length * 4L)));
                        }

                        hash.CopyTo(cat._hashes.AsSpan(ordinal * 32));
                    }

                    cat._size[i] = size;
                    cat._data[i] = offset;
                    cat._link[i] = ordinal;
                    cat.ContentBytes += size;
                    break;
                case FileTreeEntryKind.Symlink:
                    int targetLength = c.U16();
                    if (targetLength == 0 || targetLength > MaxTargetBytes)
                    {
                        throw new CatalogException($"{At(i)}: symlink target length {targetLength} is out of range");
                    }

                    var target = c.Take(targetLength);
                    if (!IsUtf8(target) || target.IndexOf((byte)0) >= 0)
                    {
                        throw new CatalogException($"{At(i)}: symlink target is not valid UTF-8 without NUL");
                    }

                    cat.AppendBlob(ref blobLength, target);
                    cat._size[i] = targetLength;
                    cat.SymlinkCount++;
                    break;
                default:
                    cat.OtherCount++;
                    break;
            }
        }

        if (assigned != count || parentLeft != 0)
        {
            throw new CatalogException($"child counts name {assigned} entries but the catalog has {count}");
        }

        if (c.Position != length - SuffixLength)
        {
            throw new CatalogException($"{length - SuffixLength - c.Position} bytes follow the last entry");
        }

        uint crc = ~c.Crc;
        var stored = new byte[SuffixLength];
        read(length - SuffixLength, stored);
        if (BinaryPrimitives.ReadUInt32LittleEndian(stored) != crc)
        {
            throw new CatalogException("checksum mismatch");
        }

        cat.Count = (int)count;
        cat.HasHashes = keepHashes;
        cat.Trim(blobLength);
        return cat;
    }

    private static bool ModeFits(FileTreeEntryKind kind, uint mode)
    {
        if (mode > 0xFFFF)
        {
            return false;
        }

        uint type = mode & 0xF000;
        return kind switch
        {
            FileTreeEntryKind.Directory => type == 0x4000,
            FileTreeEntryKind.File => type == 0x8000,
            FileTreeEntryKind.Symlink => type == 0xA000,
            _ => type is 0x1000 or 0x2000 or 0x6000 or 0xC000,
        };
    }

    private static void CheckName(ReadOnlySpan<byte> name, int i)
    {
        if (!IsUtf8(name))
        {
            throw new CatalogException($"{At(i)}: name is not valid UTF-8");
        }

        if (name.IndexOfAny((byte)'/', (byte)0) >= 0 || name.SequenceEqual("."u8) || name.SequenceEqual(".."u8))
        {
            throw new CatalogException($"{At(i)}: '{Show(name)}' is not a valid name ('/', NUL, '.' and '..' are not names)");
        }
    }

    private static bool IsUtf8(ReadOnlySpan<byte> bytes) => System.Text.Unicode.Utf8.IsValid(bytes);

    private static string At(int i) => string.Create(CultureInfo.InvariantCulture, $"entry {i}"); // only for messages

    private static string Show(ReadOnlySpan<byte> name) =>
        Encoding.UTF8.GetString(name).Replace("\0", "\\0", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private void AppendBlob(ref int blobLength, ReadOnlySpan<byte> bytes)
    {
        if (blobLength + bytes.Length > _blob.Length)
        {
            Array.Resize(ref _blob, Math.Max(blobLength + bytes.Length, Math.Max(65536, _blob.Length * 2)));
        }

        bytes.CopyTo(_blob.AsSpan(blobLength));
        blobLength += bytes.Length;
    }

    private void Grow(int capacity)
    {
        Array.Resize(ref _kind, capacity);
        Array.Resize(ref _mode, capacity);
        Array.Resize(ref _mtime, capacity);
        Array.Resize(ref _atime, capacity);
        Array.Resize(ref _size, capacity);
        Array.Resize(ref _data, capacity);
        Array.Resize(ref _nameStart, capacity);
        Array.Resize(ref _nameLength, capacity);
        Array.Resize(ref _link, capacity);
        Array.Resize(ref _children, capacity);
        Array.Resize(ref _parent, capacity);
    }

    private void Trim(int blobLength)
    {
        if (_kind.Length != Count)
        {
            Grow(Count);
        }

        Array.Resize(ref _blob, blobLength);
        if (HasHashes && _hashes.Length != FileCount * 32)
        {
            Array.Resize(ref _hashes, FileCount * 32);
        }
    }

    private sealed class CatalogException(string message) : Exception(message);

    // Sequential reads through a bounded window; the CRC covers every byte taken. Bytes are taken in order from 0, so
    // the CRC of what was taken is computed per window (when the window moves, and when asked) rather than per field.
    private sealed class Cursor(FileContentReader read, long end)
    {
        private const int WindowSize = 1 << 20;
        private readonly byte[] _window = new byte[(int)Math.Min(WindowSize, end)];
        private long _windowStart;
        private int _windowLength;
        private long _crcEnd; // bytes [0, _crcEnd) are in _crc
        private uint _crc = 0xFFFFFFFFu;

        public long Position { get; private set; }

        public uint Crc
        {
            get
            {
                UpdateCrc();
                return _crc;
            }
        }

        public ReadOnlySpan<byte> Take(int n)
        {
            if (n > end - Position)
            {
                throw new CatalogException($"truncated at byte {Position} (needed {n} more of {end})");
            }

            if (Position + n > _windowStart + _windowLength)
            {
                UpdateCrc();
                _windowStart = Position;
                _windowLength = (int)Math.Min(_window.Length, end - Position);
                read(_windowStart, _window.AsSpan(0, _windowLength));
            }

            var span = _window.AsSpan((int)(Position - _windowStart), n);
            Position += n;
            return span;
        }

        private void UpdateCrc()
        {
            if (_crcEnd < Position)
            {
                _crc = Crc32C.Update(_crc, _window.AsSpan((int)(_crcEnd - _windowStart), (int)(Position - _crcEnd)));
                _crcEnd = Position;
            }
        }

        public byte U8() => Take(1)[0];

        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
    }
}
