using System.Buffers.Binary;
using System.Text;

namespace BackupFuse.Vhdx.Format;

/// <summary>
/// The Parent Locator metadata item of a differencing file: a locator type GUID and UTF-16LE key/value pairs
/// (for the VHDX type: parent_linkage, relative_path, volume_path, absolute_win32_path). Variable length.
/// </summary>
public sealed record ParentLocator(Guid LocatorType, IReadOnlyList<KeyValuePair<string, string>> Entries)
{
    /// <summary>Size of the fixed header before the entries.</summary>
    public const int HeaderSize = 20;

    /// <summary>Key holding the parent's DataWriteGuid, lowercase with braces.</summary>
    public const string ParentLinkageKey = "parent_linkage";

    /// <summary>Optional second linkage key.</summary>
    public const string ParentLinkage2Key = "parent_linkage2";

    /// <summary>Path relative to the child's directory, with backslashes.</summary>
    public const string RelativePathKey = "relative_path";

    /// <summary>\\?\Volume{GUID}\... path.</summary>
    public const string VolumePathKey = "volume_path";

    /// <summary>\\?\d:\... or UNC path.</summary>
    public const string AbsoluteWin32PathKey = "absolute_win32_path";

    /// <summary>Byte offsets of the header fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>GUID.</summary>
        public const int LocatorType = 0;

        /// <summary>u16, 0.</summary>
        public const int Reserved = 16;

        /// <summary>u16.</summary>
        public const int KeyValueCount = 18;

        /// <summary>First entry.</summary>
        public const int Entries = HeaderSize;
    }

    /// <summary>The value of <paramref name="key"/> (keys are case-sensitive), or null.</summary>
    public string? this[string key]
    {
        get
        {
            foreach (var (k, v) in Entries)
            {
                if (k == key)
                {
                    return v;
                }
            }

            return null;
        }
    }

    /// <summary>Bytes the item needs: header, entry table, then key and value strings packed in entry order.</summary>
    public int ByteCount => HeaderSize + (Entries.Count * ParentLocatorEntry.Size) + Entries.Sum(e => (e.Key.Length + e.Value.Length) * 2);

    /// <summary>Parses the item; false for a too-short buffer; broken offsets or strings raise <see cref="InvalidDataException"/>.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out ParentLocator locator)
    {
        locator = new ParentLocator(Guid.Empty, []);
        if (source.Length < HeaderSize)
        {
            return false;
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(source[FieldOffsets.KeyValueCount..]);
        if (HeaderSize + ((long)count * ParentLocatorEntry.Size) > source.Length)
        {
            throw new InvalidDataException($"VHDX parent locator: {count} entries do not fit in {source.Length} bytes");
        }

        var entries = new KeyValuePair<string, string>[count];
        for (int i = 0; i < count; i++)
        {
            ParentLocatorEntry.TryRead(source[(FieldOffsets.Entries + (i * ParentLocatorEntry.Size))..], out var e);
            entries[i] = new(ReadString(source, e.KeyOffset, e.KeyLength, "key"), ReadString(source, e.ValueOffset, e.ValueLength, "value"));
        }

        locator = new ParentLocator(new Guid(source[..16]), entries);
        return true;
    }

    /// <summary>Writes <see cref="ByteCount"/> bytes.</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..ByteCount];
        destination.Clear();
        LocatorType.TryWriteBytes(destination);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FieldOffsets.KeyValueCount..], checked((ushort)Entries.Count));
        int data = HeaderSize + (Entries.Count * ParentLocatorEntry.Size);
        for (int i = 0; i < Entries.Count; i++)
        {
            var (key, value) = Entries[i];
            int keyBytes = Encoding.Unicode.GetBytes(key, destination[data..]);
            int valueBytes = Encoding.Unicode.GetBytes(value, destination[(data + keyBytes)..]);
            new ParentLocatorEntry((uint)data, (uint)(data + keyBytes), checked((ushort)keyBytes), checked((ushort)valueBytes))
                .Write(destination[(FieldOffsets.Entries + (i * ParentLocatorEntry.Size))..]);
            data += keyBytes + valueBytes;
        }
    }

    private static string ReadString(ReadOnlySpan<byte> source, uint offset, ushort length, string what)
    {
        if (offset == 0 || length == 0 || (length & 1) != 0 || offset + (long)length > source.Length)
        {
            throw new InvalidDataException($"VHDX parent locator: {what} at {offset}+{length} is outside the {source.Length}-byte item or malformed");
        }

        return Encoding.Unicode.GetString(source.Slice((int)offset, length));
    }
}
