using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;

namespace BackupFuse.BackupImage.Writing;

/// <summary>How <see cref="BackupWriter"/> writes an image.</summary>
public sealed record BackupOptions
{
    /// <summary>Default chunk size (64 KiB; docs/format.md has the measurement).</summary>
    public const int DefaultChunkSize = 64 * 1024;

    /// <summary>Default index entries per page (1024 entries = 56 KiB page, covering 64 MiB at 64 KiB chunks).</summary>
    public const int DefaultEntriesPerPage = 1024;

    /// <summary>Default PBKDF2-HMAC-SHA256 iteration count (OWASP's 2023 figure for PBKDF2-SHA256).</summary>
    public const int DefaultKdfIterations = 600_000;

    /// <summary>Smallest PBKDF2 iteration count the writer accepts.</summary>
    public const int MinKdfIterations = 200_000;

    /// <summary>
    /// The chain to base an incremental on (its newest image becomes the parent); null for a full backup. Only headers
    /// and index pages of the chain are read. The caller opens and disposes it.
    /// </summary>
    public BackupChain? Parent { get; init; }

    /// <summary>Chunk size (power of two, 4 KiB..4 MiB); null means the default for a full backup and the parent's for an incremental.</summary>
    public int? ChunkSize { get; init; }

    /// <summary>Compression.</summary>
    public ChunkCodec Codec { get; init; } = ChunkCodec.Deflate;

    /// <summary>Deflate level 1..9 (1 = fastest; see docs/format.md).</summary>
    public int DeflateLevel { get; init; } = ChunkCompressor.DefaultLevel;

    /// <summary>zstd level 1..<see cref="ChunkCompressor.MaxZstdLevel"/> (used when <see cref="Codec"/> is zstd).</summary>
    public int ZstdLevel { get; init; } = ChunkCompressor.DefaultZstdLevel;

    /// <summary>
    /// Encrypt the new image with a key derived from <see cref="Passphrase"/> (a new salt). An incremental whose parent
    /// chain is encrypted is always encrypted, with the chain's salt and iteration count, whatever this says.
    /// </summary>
    public bool Encrypt { get; init; }

    /// <summary>The caller insists on an unencrypted image: refused (ArgumentException) when the parent chain is encrypted.</summary>
    public bool NoEncrypt { get; init; }

    /// <summary>Passphrase for encrypting the new image (needed too for an incremental of an encrypted chain).</summary>
    public PassphraseSource? Passphrase { get; init; }

    /// <summary>PBKDF2 iterations for a new salt (an incremental over an encrypted parent reuses the parent's salt and count).</summary>
    public int KdfIterations { get; init; } = DefaultKdfIterations;

    /// <summary>Store identical chunks once.</summary>
    public bool Deduplicate { get; init; } = true;

    /// <summary>Compression/hash worker threads (default: one per core).</summary>
    public int WorkerCount { get; init; } = Environment.ProcessorCount;

    /// <summary>Index entries per page (power of two); tests lower it to exercise many pages.</summary>
    public int EntriesPerPage { get; init; } = DefaultEntriesPerPage;

    /// <summary>Identity of the new image (default: a new random GUID). For tests and tools.</summary>
    public Guid? ImageId { get; init; }

    /// <summary>The source is a volume (partition, logical volume, file-system image): the header says so and names its file system.</summary>
    public bool Volume { get; init; }

    /// <summary>With <see cref="Volume"/>: store every block even where the file system's allocation map says it is free.</summary>
    public bool AllBlocks { get; init; }
}
