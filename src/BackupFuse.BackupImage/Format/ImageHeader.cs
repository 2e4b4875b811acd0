using System.Buffers.Binary;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Format;

// Design notes:
// - The header is the first 512 bytes of a .bfi file and is written first, so a writer streaming to a pipe never
//   needs to come back to it: everything that is only known at the end (counts, index location) is in the trailer.
// - Parse validates in a fixed order (size, magic, major version, CRC, field ranges) so the error a user sees names
//   the first thing that is wrong; docs/format.md lists the order.
// - Reserved bytes are written as zeros by this writer and ignored by readers of the same major version (room for
//   minor versions), but Parse keeps them (and unknown flag bits), so WriteTo reproduces the parsed bytes exactly: the
//   parent binding of a child (ParentBinding) hashes its parent's header as serialized, including fields a newer minor
//   version may have put there.
// - Version 1.1 added the parent binding (flag bit 0, bytes 144..175); a 1.0 image has the flag off and still reads.
// - Volume images (flag bit 2) name their file system in byte 176 (FileSystemKind); both are additive: a reader that
//   ignores them reads the volume as a disk, as every image written before them is read. A copy of the header (a
//   `with` expression, as a chain merge makes) carries both.

/// <summary>The fixed 512-byte header at offset 0 of an image: identity, geometry, codec and key parameters.</summary>
public sealed record ImageHeader
{
    /// <summary>Size of the header on disk.</summary>
    public const int Size = 512;

    /// <summary>Major format version this code reads and writes; a reader rejects any other major version.</summary>
    public const ushort CurrentMajorVersion = 1;

    /// <summary>Minor format version this code writes; any minor version of the same major is readable.</summary>
    public const ushort CurrentMinorVersion = 1;

    /// <summary>Smallest chunk size a reader accepts.</summary>
    public const int MinChunkSize = 4096;

    /// <summary>Largest chunk size a reader accepts.</summary>
    public const int MaxChunkSize = 4 * 1024 * 1024;

    /// <summary>Largest PBKDF2 iteration count a reader accepts (a hostile header must not stall the reader).</summary>
    public const int MaxKdfIterations = 50_000_000;

    private const int ParentBindingOffset = 144;

    private const int FileSystemOffset = ParentBindingOffset + Format.ParentBinding.Size;

    private const int ReservedOffset = FileSystemOffset + 1;

    private const int ReservedLength = 508 - ReservedOffset;

    /// <summary>"BFIMG\r\n\x1A": the file magic (a text-mode transfer that mangles line ends breaks it visibly).</summary>
    public static ReadOnlySpan<byte> Magic => "BFIMG\r\n\u001A"u8;

    /// <summary>Major version of the image.</summary>
    public ushort MajorVersion { get; init; } = CurrentMajorVersion;

    /// <summary>Minor version of the image.</summary>
    public ushort MinorVersion { get; init; } = CurrentMinorVersion;

    /// <summary>Stable identity of this backup point.</summary>
    public Guid ImageId { get; init; }

    /// <summary>Identity of the parent image; <see cref="Guid.Empty"/> for a full backup.</summary>
    public Guid ParentId { get; init; }

    /// <summary>Size of the backed-up disk in bytes.</summary>
    public long DiskSize { get; init; }

    /// <summary>Size of every chunk but possibly the last (a power of two).</summary>
    public int ChunkSize { get; init; }

    /// <summary>Index entries per index page (a power of two).</summary>
    public int EntriesPerPage { get; init; }

    /// <summary>When the backup was taken.</summary>
    public DateTime CreatedUtc { get; init; }

    /// <summary>Compression of the chunks.</summary>
    public ChunkCodec Codec { get; init; }

    /// <summary>Encryption of chunks and index pages.</summary>
    public EncryptionMethod Encryption { get; init; }

    /// <summary>PBKDF2 iteration count (0 when not encrypted).</summary>
    public int KdfIterations { get; init; }

    /// <summary>PBKDF2 salt, 32 bytes (zeros when not encrypted).</summary>
    public byte[] KdfSalt { get; init; } = new byte[32];

    /// <summary>Key-check value, 32 bytes (zeros when not encrypted).</summary>
    public byte[] KeyCheck { get; init; } = new byte[32];

    /// <summary>Flag bits (bit 0: <see cref="ImageHeaderFlags.ParentBound"/>); unknown bits are kept and ignored.</summary>
    public ImageHeaderFlags Flags { get; init; }

    /// <summary>
    /// With <see cref="ImageHeaderFlags.ParentBound"/>: the SHA-256 binding of the parent's header and trailer, 32 bytes
    /// (<see cref="Format.ParentBinding"/>); zeros otherwise.
    /// </summary>
    public byte[] ParentBinding { get; init; } = new byte[Format.ParentBinding.Size];

    /// <summary>With <see cref="ImageHeaderFlags.Volume"/>: the file system probed at backup time (byte 176); unknown values are kept.</summary>
    public FileSystemKind FileSystem { get; init; }

    /// <summary>Whether the image holds a volume (presented inside a synthesized partition table) rather than a whole disk.</summary>
    public bool IsVolume => (Flags & ImageHeaderFlags.Volume) != 0;

    /// <summary>Bytes 177..507 as read (zeros when written by this version); kept so that WriteTo reproduces a parsed header.</summary>
    public byte[] Reserved { get; init; } = new byte[ReservedLength];

    /// <summary>Whether the header carries a binding to its parent's content (images of version 1.1 and later).</summary>
    public bool IsParentBound => (Flags & ImageHeaderFlags.ParentBound) != 0;

    /// <summary>Whether this image is a full backup (no parent).</summary>
    public bool IsFull => ParentId == Guid.Empty;

    /// <summary>Number of chunks covering the disk.</summary>
    public long ChunkCount => (DiskSize + ChunkSize - 1) / ChunkSize;

    /// <summary>Serializes the header with its CRC into <paramref name="destination"/> (at least <see cref="Size"/> bytes).</summary>
    public void WriteTo(Span<byte> destination)
    {
        var b = destination[..Size];
        b.Clear();
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b[8..], MajorVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], MinorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], Size);
        ImageId.TryWriteBytes(b.Slice(16, 16));
        ParentId.TryWriteBytes(b.Slice(32, 16));
        BinaryPrimitives.WriteInt64LittleEndian(b[48..], DiskSize);
        BinaryPrimitives.WriteInt32LittleEndian(b[56..], ChunkSize);
        BinaryPrimitives.WriteInt32LittleEndian(b[60..], EntriesPerPage);
        BinaryPrimitives.WriteInt64LittleEndian(b[64..], new DateTimeOffset(DateTime.SpecifyKind(CreatedUtc, DateTimeKind.Utc)).ToUnixTimeMilliseconds());
        b[72] = (byte)Codec;
        b[73] = (byte)Encryption;
        BinaryPrimitives.WriteInt32LittleEndian(b[76..], KdfIterations);
        KdfSalt.AsSpan(0, 32).CopyTo(b[80..]);
        KeyCheck.AsSpan(0, 32).CopyTo(b[112..]);
        BinaryPrimitives.WriteUInt16LittleEndian(b[74..], (ushort)Flags);
        ParentBinding.AsSpan(0, Format.ParentBinding.Size).CopyTo(b[ParentBindingOffset..]);
        b[FileSystemOffset] = (byte)FileSystem;
        Reserved.AsSpan(0, ReservedLength).CopyTo(b[ReservedOffset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(b[508..], Crc32C.Compute(b[..508]));
    }

    /// <summary>Parses and validates a header; <paramref name="path"/> is only used in error messages.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid header of a readable version.</exception>
    public static ImageHeader Parse(ReadOnlySpan<byte> b, string path)
    {
        if (b.Length < Size)
        {
            throw new InvalidDataException($"{path}: not a backup image (file is shorter than the {Size}-byte header)");
        }

        if (!b[..8].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path}: not a backup image (wrong magic)");
        }

        ushort major = BinaryPrimitives.ReadUInt16LittleEndian(b[8..]);
        ushort minor = BinaryPrimitives.ReadUInt16LittleEndian(b[10..]);
        if (major != CurrentMajorVersion)
        {
            throw new InvalidDataException($"{path}: unsupported image format version {major}.{minor} (this program reads version {CurrentMajorVersion}.x)");
        }

        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(b[508..]);
        uint actual = Crc32C.Compute(b[..508]);
        if (stored != actual)
        {
            throw new InvalidDataException($"{path}: header checksum mismatch (stored 0x{stored:X8}, computed 0x{actual:X8}): the header is corrupt");
        }

        uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(b[12..]);
        long diskSize = BinaryPrimitives.ReadInt64LittleEndian(b[48..]);
        int chunkSize = BinaryPrimitives.ReadInt32LittleEndian(b[56..]);
        int perPage = BinaryPrimitives.ReadInt32LittleEndian(b[60..]);
        long created = BinaryPrimitives.ReadInt64LittleEndian(b[64..]);
        var codec = (ChunkCodec)b[72];
        var encryption = (EncryptionMethod)b[73];
        int iterations = BinaryPrimitives.ReadInt32LittleEndian(b[76..]);
        var flags = (ImageHeaderFlags)BinaryPrimitives.ReadUInt16LittleEndian(b[74..]);
        var imageId = new Guid(b.Slice(16, 16));
        var parentId = new Guid(b.Slice(32, 16));
        string? problem =
            headerSize != Size ? $"header size {headerSize} is not {Size}" :
            imageId == Guid.Empty ? "image id is empty" :
            diskSize <= 0 ? $"disk size {diskSize} is not positive" :
            chunkSize < MinChunkSize || chunkSize > MaxChunkSize || (chunkSize & (chunkSize - 1)) != 0 ? $"chunk size {chunkSize} is not a power of two in {MinChunkSize}..{MaxChunkSize}" :
            perPage < 1 || perPage > 65536 || (perPage & (perPage - 1)) != 0 ? $"index page size {perPage} is not a power of two in 1..65536" :
            (diskSize + chunkSize - 1) / chunkSize / perPage >= uint.MaxValue ? "disk size needs more index pages than the format can address" :
            !Enum.IsDefined(codec) ? $"unknown codec {(byte)codec}" :
            !Enum.IsDefined(encryption) ? $"unknown encryption method {(byte)encryption}" :
            encryption != EncryptionMethod.None && (iterations < 1 || iterations > MaxKdfIterations) ? $"key derivation iteration count {iterations} is out of range" :
            created < 0 || created > 253402300799999 ? $"creation time {created} is out of range" :
            (flags & ImageHeaderFlags.ParentBound) != 0 && parentId == Guid.Empty ? "a full image (no parent) claims a parent binding" :
            null;
        if (problem != null)
        {
            throw new InvalidDataException($"{path}: invalid header: {problem}");
        }

        return new ImageHeader
        {
            MajorVersion = major,
            MinorVersion = minor,
            ImageId = imageId,
            ParentId = parentId,
            DiskSize = diskSize,
            ChunkSize = chunkSize,
            EntriesPerPage = perPage,
            CreatedUtc = DateTimeOffset.FromUnixTimeMilliseconds(created).UtcDateTime,
            Codec = codec,
            Encryption = encryption,
            KdfIterations = iterations,
            KdfSalt = b.Slice(80, 32).ToArray(),
            KeyCheck = b.Slice(112, 32).ToArray(),
            Flags = flags,
            ParentBinding = b.Slice(ParentBindingOffset, Format.ParentBinding.Size).ToArray(),
            FileSystem = (FileSystemKind)b[FileSystemOffset],
            Reserved = b.Slice(ReservedOffset, ReservedLength).ToArray(),
        };
    }
}
