using System.Text;

namespace BackupFuse.Vhdx.Format;

/// <summary>The file type identifier at offset 0: the "vhdxfile" signature and an informational creator string.</summary>
public readonly record struct FileTypeIdentifier(string Creator)
{
    /// <summary>Bytes used by the structure (the 64 KiB slot that holds it is otherwise reserved).</summary>
    public const int Size = FieldOffsets.Creator + CreatorSize;

    /// <summary>Size of the slot at the start of the file that holds the structure.</summary>
    public const int SlotSize = 64 * 1024;

    private const int CreatorSize = 512;

    /// <summary>The signature bytes "vhdxfile".</summary>
    public static ReadOnlySpan<byte> Signature => "vhdxfile"u8;

    /// <summary>Byte offsets of the fields.</summary>
    public static class FieldOffsets
    {
        /// <summary>"vhdxfile".</summary>
        public const int Signature = 0;

        /// <summary>UTF-16LE creator, up to 256 code units, NUL-padded.</summary>
        public const int Creator = 8;
    }

    /// <summary>Parses the identifier; false when the signature is missing.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out FileTypeIdentifier identifier)
    {
        identifier = default;
        if (source.Length < Size || !source.StartsWith(Signature))
        {
            return false;
        }

        var creator = source.Slice(FieldOffsets.Creator, CreatorSize);
        int end = 0;
        while (end + 1 < creator.Length && (creator[end] | creator[end + 1]) != 0)
        {
            end += 2;
        }

        identifier = new FileTypeIdentifier(Encoding.Unicode.GetString(creator[..end]));
        return true;
    }

    /// <summary>Writes the <see cref="Size"/> bytes of the structure (the creator is truncated to 256 UTF-16 units).</summary>
    public void Write(Span<byte> destination)
    {
        destination = destination[..Size];
        destination.Clear();
        Signature.CopyTo(destination);
        var text = (Creator ?? string.Empty).AsSpan();
        if (text.Length > CreatorSize / 2)
        {
            text = text[..(CreatorSize / 2)];
        }

        Encoding.Unicode.GetBytes(text, destination[FieldOffsets.Creator..]);
    }
}
