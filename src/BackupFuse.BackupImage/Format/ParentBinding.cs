using System.Security.Cryptography;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - An incremental names its parent by id, and an id is only a label: a different image carrying the same id (an
//   edited header, or two chains mixed up by a tool) would otherwise be combined with the child silently and read
//   wrong bytes. The binding ties the child to the parent's CONTENT: SHA-256 over a label, the parent's 512-byte header
//   and its 128-byte trailer, exactly as stored.
// - What that covers: the parent's header (identity, geometry, time, key salt and check, and its own binding, so the
//   binding chains down to the full backup) and trailer (counts, where the index directory is and the directory's
//   CRC-32C, which covers every index page's CRC, which covers every payload's CRC and every chunk's SHA-256 in
//   unencrypted images). So any other image, and any re-written parent, gives another binding.
// - What it is not: an authentication against a forger. The links below the SHA-256 are CRCs, and the binding has no
//   key, so someone who can write the files can craft a parent that matches. Against that, the encrypted format's
//   GCM tags (and a keyed HMAC, left for later) are the tool; this detects mix-ups and edits, at no cost when reading
//   (it hashes 640 bytes the reader has already read).
// - Computed from the parsed header and trailer re-serialized: both keep their reserved bytes, so this equals the
//   hash of the bytes on disk.

/// <summary>The binding of a child image to its parent's content, stored in the child's header (format 1.1).</summary>
public static class ParentBinding
{
    /// <summary>Length of the binding (a SHA-256).</summary>
    public const int Size = 32;

    private static ReadOnlySpan<byte> Label => "BackupFuse v1 parent binding"u8;

    /// <summary>The binding a child of the image with <paramref name="header"/> and <paramref name="trailer"/> stores.</summary>
    public static byte[] Compute(ImageHeader header, ImageTrailer trailer)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(trailer);
        Span<byte> bytes = stackalloc byte[Label.Length + ImageHeader.Size + ImageTrailer.Size];
        Label.CopyTo(bytes);
        header.WriteTo(bytes[Label.Length..]);
        trailer.WriteTo(bytes[(Label.Length + ImageHeader.Size)..]);
        return IdentityHash.HashData(bytes);
    }

    /// <summary>
    /// The binding that children of this image store: <see cref="Compute"/> for an image written by a backup, the state
    /// binding it carries for an image written by merge (<see cref="DerivedImage"/>), so that every file holding one
    /// disk state serves the children of that state.
    /// </summary>
    public static byte[] ForChildren(ImageHeader header, ImageTrailer trailer) => DerivedImage.StateBinding(header, trailer);

    /// <summary>Whether <paramref name="child"/> (which must be bound) was made from the disk state of the image with this header and trailer.</summary>
    public static bool Matches(ImageHeader child, ImageHeader parentHeader, ImageTrailer parentTrailer)
    {
        ArgumentNullException.ThrowIfNull(child);
        return CryptographicOperations.FixedTimeEquals(child.ParentBinding, ForChildren(parentHeader, parentTrailer));
    }
}
