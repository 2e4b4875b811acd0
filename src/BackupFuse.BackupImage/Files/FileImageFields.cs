using System.Buffers.Binary;
using BackupFuse.BackupImage.Format;

namespace BackupFuse.BackupImage.Files;

// Design notes:
// - A file-level image (header flag Files) keeps its own fields in the header's reserved area, bytes 184..247, well
//   clear of the file-system byte (176) and of the derived fields (444..507). ImageHeader keeps reserved bytes as read,
//   so a merge (a `with` copy) carries them and WriteTo reproduces them; this class only reads and writes that area.
// - The catalog's place is in the header (the image stays readable from its header alone); the writer therefore knows
//   it before it writes the header (a directory is scanned first) or, for a tar stream, rewrites the header at the end
//   (FileImageWriter: seekable destinations only).
// - Counts are descriptive (for `info`): the catalog is the truth, and FileImageTree checks the catalog against the
//   stream, never against these counts.

/// <summary>The fields of a file-level image's header (bytes 184..247, see docs/format.md section 12).</summary>
/// <param name="CatalogOffset">Stream offset of the catalog (a chunk boundary; the data stream ends there).</param>
/// <param name="CatalogLength">Bytes of the catalog; the stream (the image's disk size) ends with it, padded with zeros to a whole chunk.</param>
/// <param name="Files">Regular files in the tree.</param>
/// <param name="Directories">Directories in the tree, the root included.</param>
/// <param name="Symlinks">Symbolic links in the tree.</param>
/// <param name="Others">Devices, FIFOs and sockets in the tree.</param>
/// <param name="ContentBytes">Sum of the sizes of the tree's files.</param>
/// <param name="NewContentBytes">Content bytes this image stores in its own part of the stream (all of them for a full image).</param>
public sealed record FileImageFields(long CatalogOffset, long CatalogLength, long Files, long Directories, long Symlinks, long Others, long ContentBytes, long NewContentBytes)
{
    /// <summary>First header byte of the fields.</summary>
    public const int HeaderOffset = 184;

    /// <summary>Bytes the fields take (8 little-endian 64-bit numbers).</summary>
    public const int Length = 64;

    private const int ReservedStart = 177; // ImageHeader.Reserved covers header bytes 177..507

    /// <summary>Whether <paramref name="header"/> is that of a file-level image.</summary>
    public static bool IsFileImage(ImageHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        return (header.Flags & ImageHeaderFlags.Files) != 0;
    }

    /// <summary>The fields of a file-level image, or null when the header is not one.</summary>
    public static FileImageFields? Read(ImageHeader header)
    {
        if (!IsFileImage(header) || header.Reserved.Length < HeaderOffset - ReservedStart + Length)
        {
            return null;
        }

        byte[] reserved = header.Reserved;
        long F(int i) => BinaryPrimitives.ReadInt64LittleEndian(reserved.AsSpan(HeaderOffset - ReservedStart + (i * 8), 8));
        return new FileImageFields(F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7));
    }

    /// <summary>A copy of <paramref name="header"/> with the Files flag and these fields.</summary>
    public ImageHeader ApplyTo(ImageHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        byte[] reserved = (byte[])header.Reserved.Clone();
        var b = reserved.AsSpan(HeaderOffset - ReservedStart, Length);
        long[] values = [CatalogOffset, CatalogLength, Files, Directories, Symlinks, Others, ContentBytes, NewContentBytes];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(b[(i * 8)..], values[i]);
        }

        return header with { Flags = header.Flags | ImageHeaderFlags.Files, Reserved = reserved };
    }
}
