namespace BackupFuse.BackupImage.Format;

/// <summary>Flag bits of the image header (offset 74). Bits not defined here are kept and ignored by readers.</summary>
[Flags]
public enum ImageHeaderFlags : ushort
{
    /// <summary>No flags.</summary>
    None = 0,

    /// <summary>The header carries a <see cref="ParentBinding"/> to its parent's content (format 1.1 and later).</summary>
    ParentBound = 1,

    /// <summary>
    /// Written by merge/prune (format 1.2): the image reproduces the disk state of an existing point under its identity
    /// and carries that point's state binding and its own file id (<see cref="DerivedImage"/>).
    /// </summary>
    Derived = 2,

    /// <summary>
    /// The image holds a volume (a partition, a logical volume, a file-system image), not a whole disk: readers present
    /// it inside a synthesized partition table. The file system is in <see cref="ImageHeader.FileSystem"/>.
    /// </summary>
    Volume = 4,

    /// <summary>
    /// A file-level image: the "disk" is a data stream of file contents followed by a catalog of the tree
    /// (<see cref="Files.FileImageFields"/>, docs/format.md section 12). Its incrementals extend the parent's stream.
    /// </summary>
    Files = 8,
}
