using System.Security.Cryptography;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - Identity names a disk STATE, not a file. A backup writes the first file of a state; merge (synthetic full) and
//   prune (folding forgotten points into a later one) write other files of the same state, under the same image id.
//   Such a file is "derived": header flag bit 1 (ImageHeaderFlags.Derived), minor version 2, and two fields at the END
//   of the header's reserved area (so fields other minor versions add from its start are not in the way):
//       bytes 444..459  lineage id     the identity of the first full backup the state descends from (copied from the
//                                      chain's bottom: its lineage id when that is derived too), so that retention can
//                                      still tell which points belong to one disk after a synthetic full cut the chain
//       bytes 460..475  file id        random, distinct for every derived file; keys of an encrypted derived image
//                                      are derived from it instead of the image id (ImageKeys), so two files of one
//                                      identity never share a (key, nonce) pair
//       bytes 476..507  state binding  the binding children of this state carry: ParentBinding.Compute over the
//                                      header and trailer of the state's FIRST file (copied again when a derived file
//                                      is derived further)
// - ParentBinding.ForChildren is therefore "the state binding" of any file: Compute(header, trailer) for a first file,
//   the carried value for a derived one. Children bind to it, so every file of a state serves every child of it,
//   old children (made from the first file) and new ones (made from a synthetic full) alike.
// - What this gives up: a child no longer pins the exact bytes of a derived parent's header and trailer, only the
//   state it claims; a derived file is only ever written after being checked chunk by chunk against the chain it
//   reproduces (ImageFolder). It remains a mix-up check, not an authentication (docs/format.md section 8.1).
// - Everything else of the header is copied from the file it reproduces (record `with`), so descriptive fields added
//   by other minor versions survive a merge without this code knowing them.

/// <summary>The fields of a derived image (written by merge), kept at the end of the header's reserved bytes.</summary>
public static class DerivedImage
{
    /// <summary>Minor format version of a derived image.</summary>
    public const ushort MinorVersion = 2;

    /// <summary>Bytes the derived fields take at the end of the reserved area (lineage id 16 + file id 16 + state binding 32).</summary>
    public const int FieldsLength = 16 + 16 + ParentBinding.Size;

    /// <summary>Whether the header is that of a derived image.</summary>
    public static bool IsDerived(ImageHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        return (header.Flags & ImageHeaderFlags.Derived) != 0 && header.Reserved.Length >= FieldsLength;
    }

    /// <summary>The id the image's keys are derived from: its file id when derived, else its image id.</summary>
    public static Guid KeyId(ImageHeader header) => IsDerived(header) ? FileId(header) : header.ImageId;

    /// <summary>The file id of a derived image (<see cref="Guid.Empty"/> otherwise).</summary>
    public static Guid FileId(ImageHeader header) =>
        IsDerived(header) ? new Guid(header.Reserved.AsSpan(header.Reserved.Length - FieldsLength + 16, 16)) : Guid.Empty;

    /// <summary>
    /// The lineage of a derived image: the identity of the first full backup its state descends from (null when not
    /// derived: follow the parents to the full backup).
    /// </summary>
    public static Guid? LineageId(ImageHeader header) =>
        IsDerived(header) ? new Guid(header.Reserved.AsSpan(header.Reserved.Length - FieldsLength, 16)) : null;

    /// <summary>The binding children of this image's disk state carry (see the design notes).</summary>
    public static byte[] StateBinding(ImageHeader header, ImageTrailer trailer)
    {
        ArgumentNullException.ThrowIfNull(header);
        return IsDerived(header)
            ? header.Reserved.AsSpan(header.Reserved.Length - ParentBinding.Size).ToArray()
            : ParentBinding.Compute(header, trailer);
    }

    /// <summary>
    /// The header of a new derived file of the state of <paramref name="source"/>: a copy of its header (every field,
    /// known or not) with a new parent, a new file id, the state binding, and the derived flag and minor version.
    /// Encryption fields are left to the writer (the key check depends on the file id). <paramref name="lineageId"/> is
    /// the lineage of the chain (<see cref="LineageId"/> of its full backup, or that backup's identity).
    /// </summary>
    public static ImageHeader Derive(ImageHeader source, ImageTrailer sourceTrailer, ImageHeader? newParent, ImageTrailer? newParentTrailer, Guid lineageId, out Guid fileId)
    {
        ArgumentNullException.ThrowIfNull(source);
        byte[] state = StateBinding(source, sourceTrailer);
        fileId = Guid.NewGuid();
        byte[] reserved = (byte[])source.Reserved.Clone();
        lineageId.TryWriteBytes(reserved.AsSpan(reserved.Length - FieldsLength, 16));
        fileId.TryWriteBytes(reserved.AsSpan(reserved.Length - FieldsLength + 16, 16));
        state.CopyTo(reserved.AsSpan(reserved.Length - ParentBinding.Size));
        var flags = (source.Flags | ImageHeaderFlags.Derived) & ~ImageHeaderFlags.ParentBound;
        if (newParent != null)
        {
            flags |= ImageHeaderFlags.ParentBound;
        }

        return source with
        {
            MinorVersion = Math.Max(source.MinorVersion, MinorVersion),
            ParentId = newParent?.ImageId ?? Guid.Empty,
            Flags = flags,
            ParentBinding = newParent != null ? ParentBinding.ForChildren(newParent, newParentTrailer!) : new byte[ParentBinding.Size],
            Reserved = reserved,
            KdfSalt = (byte[])source.KdfSalt.Clone(),
            KeyCheck = new byte[32],
        };
    }

    /// <summary>Whether two state bindings are equal (constant time).</summary>
    public static bool SameState(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => CryptographicOperations.FixedTimeEquals(a, b);
}
