using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.Core;

namespace BackupFuse.BackupImage.Writing;

// Design notes:
// - Pipeline: one reader thread walks the disk in chunk order, skipping holes (SEEK_DATA/SEEK_HOLE or extents) as
//   whole runs without reading them; N worker threads test for zeros, hash (SHA-256), compare with the parent chain's
//   effective hash and compress; the calling thread writes results in chunk order. Both queues are bounded, so memory
//   stays at about (queue depth x chunk size) whatever the disk size.
// - An incremental never reads the parent's data: BackupChain.EffectiveChunk reads only index pages. A chunk equal to
//   what the chain already reads (same SHA-256, or zero over zero) is left Absent.
// - Output to a file goes to "<dest>.partial", is fsynced, renamed to <dest> (never overwriting) and the directory is
//   fsynced. Any failure deletes the partial file, so no file that opens as valid is ever left behind; "no space" is
//   reported as such. Output to a stream (a pipe, stdout) is written straight through: a reader recognises a cut
//   stream by its missing trailer, and the writer reports it too: every failed or short write to standard output
//   (EPIPE when the reader exits) is an IOException (StandardOutputStream), never a silent success.
// - An incremental of an encrypted chain is encrypted with the chain's salt and iteration count, whatever the
//   options say (NoEncrypt is refused); it carries a binding to its parent's header and trailer (ParentBinding).
// - The writer never opens an existing image for writing.
// - A volume (options.Volume) gets header flag Volume and its probed file system; unless AllBlocks, the source is
//   read through the file system's used-block map (UsedBlocksDiskReader), so free blocks are holes that read as
//   zeros. A file system without a map, or not clean, is stored block for block, and VolumeNote says why.

/// <summary>Writes a full or incremental backup image of a disk (a file, a block device or any IBlockSource).</summary>
public static partial class BackupWriter
{
    /// <summary>Backs up the file or block device <paramref name="sourcePath"/> to <paramref name="destinationPath"/> ("-" = stdout).</summary>
    /// <exception cref="IOException">The source cannot be read or the destination cannot be written (message names which and why).</exception>
    public static BackupResult Backup(string sourcePath, string destinationPath, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        using var disk = new FileDiskReader(sourcePath);
        return ToDestination(disk, destinationPath, options, progress, cancellationToken);
    }

    /// <summary>Backs up <paramref name="source"/> to <paramref name="destinationPath"/> ("-" = stdout). Zero/Unallocated extents are not read.</summary>
    public static BackupResult Backup(IBlockSource source, string destinationPath, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var disk = new BlockSourceDiskReader(source, source.GetType().Name);
        return ToDestination(disk, destinationPath, options, progress, cancellationToken);
    }

    /// <summary>Backs up the file or block device to a forward-only stream (a pipe); the stream is not closed.</summary>
    public static BackupResult Backup(string sourcePath, Stream destination, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sourcePath);
        using var disk = new FileDiskReader(sourcePath);
        return Run(disk, destination, "stream", options, progress, cancellationToken);
    }

    /// <summary>Backs up <paramref name="source"/> to a forward-only stream; the stream is not closed.</summary>
    public static BackupResult Backup(IBlockSource source, Stream destination, BackupOptions options, IProgress<BackupProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var disk = new BlockSourceDiskReader(source, source.GetType().Name);
        return Run(disk, destination, "stream", options, progress, cancellationToken);
    }

    private static BackupResult ToDestination(IDiskReader disk, string destinationPath, BackupOptions options, IProgress<BackupProgress>? progress, CancellationToken ct) =>
        ToDestination(destinationPath, (output, name) => Run(disk, output, name, options, progress, ct));

    /// <summary>
    /// Runs <paramref name="run"/> on the destination: standard output for "-", else "&lt;dest&gt;.partial" (seekable),
    /// fsynced and renamed to <paramref name="destinationPath"/> on success, deleted on failure.
    /// </summary>
    internal static T ToDestination<T>(string destinationPath, Func<Stream, string, T> run)
    {
        ArgumentException.ThrowIfNullOrEmpty(destinationPath);
        if (destinationPath == "-")
        {
            // Not Console.OpenStandardOutput, which ignores EPIPE (StandardOutputStream says why). Not disposed on
            // failure: disposing flushes, and a second error from the flush would hide the first.
            var stdout = StandardOutputStream.OpenBuffered();
            var streamed = run(stdout, "-");
            stdout.Dispose();
            return streamed;
        }

        string dest = Path.GetFullPath(destinationPath);
        if (File.Exists(dest) || Directory.Exists(dest))
        {
            throw new IOException($"{dest} already exists: an image is never overwritten");
        }

        string directory = Path.GetDirectoryName(dest)!;
        if (!Directory.Exists(directory))
        {
            throw new IOException($"cannot write {dest}: the directory {directory} does not exist");
        }

        string partial = dest + ".partial";
        FileStream? fs = null;
        try
        {
            fs = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
            var result = run(fs, dest);
            fs.Flush(flushToDisk: true);
            fs.Dispose();
            fs = null;
            Lifecycle.CrashPoint.Hit("backup: written and fsynced");
            File.Move(partial, dest, overwrite: false);
            try
            {
                Lifecycle.DurableFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(dest))!);
            }
            catch (IOException)
            {
                // Best effort, as it always was for backups: the image is complete and in place (unlike a merge,
                // whose publish reports it, see DurableFile).
            }

            return result;
        }
        catch (Exception e)
        {
            try
            {
                fs?.Dispose();
            }
            catch (IOException)
            {
                // Flushing the rest failed too (typically the same full disk); the partial file goes anyway.
            }

            TryDelete(partial);
            if (e is IOException io && IsDiskFull(io))
            {
                throw new IOException($"no space left on device while writing {dest}", e);
            }

            throw;
        }
    }

    private static bool IsDiskFull(IOException e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
        {
            if (x is IOException io && (io.HResult == 28 || io.HResult == unchecked((int)0x80070070) || io.HResult == unchecked((int)0x80070027) ||
                io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) || io.Message.Contains("no space left", StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing more can be done; a .partial file never opens as a valid image name in a catalog (*.bfi).
        }
    }

    private static BackupResult Run(IDiskReader disk, Stream output, string destName, BackupOptions options, IProgress<BackupProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(options);
        var header = BuildHeader(disk, options, out var keys);
        string? volumeNote = null;
        if (options.Volume)
        {
            var fileSystem = Volumes.FileSystemProbe.Probe(disk.Read, disk.Length);
            header = header with { Flags = header.Flags | ImageHeaderFlags.Volume, FileSystem = fileSystem };
            string fsName = Volumes.FileSystemProbe.Describe(fileSystem);
            if (options.AllBlocks)
            {
                volumeNote = $"volume ({fsName}), every block stored (--all-blocks)";
            }
            else if (Volumes.UsedBlocks.TryBuild(fileSystem, disk.Read, disk.Length, out string why) is { } map)
            {
                disk = new Volumes.UsedBlocksDiskReader(disk, map);
                volumeNote = $"volume ({fsName}), used blocks only: {Bytes(map.UsedBlocks * map.BlockSize)} of {Bytes(disk.Length)} in use";
            }
            else
            {
                volumeNote = $"volume ({fsName}), every block stored: {why}";
            }
        }

        using (keys)
        {
            var sw = Stopwatch.StartNew();
            var writer = new ImageStreamWriter(output, header, keys, options.Deduplicate);
            var pipeline = new BackupPipeline(disk, header, options, writer, progress);
            pipeline.Run(ct);
            writer.Finish();
            progress?.Report(new BackupProgress(header.DiskSize, header.DiskSize, writer.Position));
            return BackupResult.Of(destName, header, writer, pipeline.SourceBytesRead, sw.Elapsed) with
            {
                VolumeNote = volumeNote,
            };
        }
    }

    private static ImageHeader BuildHeader(IDiskReader disk, BackupOptions options, out ImageKeys? keys) =>
        BuildHeader(disk.Name, disk.Length, options, files: false, out keys);

    /// <summary>
    /// The header of a new image of <paramref name="length"/> bytes (identity, geometry, codec, encryption and parent
    /// binding); a file-level image (<paramref name="files"/>) extends its parent's stream, so its length is not checked
    /// against the parent's here (FileImageWriter places it).
    /// </summary>
    internal static ImageHeader BuildHeader(string sourceName, long length, BackupOptions options, bool files, out ImageKeys? keys)
    {
        var parent = options.Parent;
        if (length <= 0)
        {
            throw new IOException($"source {sourceName} is empty");
        }

        int chunkSize = options.ChunkSize ?? parent?.ChunkSize ?? BackupOptions.DefaultChunkSize;
        if (parent != null)
        {
            // InvalidDataException: the parent does not fit this source; the caller shows the message as it is.
            if (Files.FileImageFields.IsFileImage(parent.Top.Header) != files)
            {
                throw new InvalidDataException(files
                    ? $"the parent image {parent.Top.Path} is a disk backup: an incremental of files needs a file-level parent (backup --files)"
                    : $"the parent image {parent.Top.Path} is a file-level backup: an incremental of {sourceName} needs a disk backup as its parent");
            }

            if (!files && parent.DiskSize != length)
            {
                throw new InvalidDataException($"source {sourceName} is a disk of {length} bytes but the parent image {parent.Top.Path} is a disk of {parent.DiskSize} bytes: an incremental needs a parent of the same disk");
            }

            if (chunkSize != parent.ChunkSize)
            {
                throw new InvalidDataException($"chunk size {chunkSize} differs from the parent's {parent.ChunkSize} ({parent.Top.Path})");
            }
        }

        if (chunkSize < ImageHeader.MinChunkSize || chunkSize > ImageHeader.MaxChunkSize || (chunkSize & (chunkSize - 1)) != 0)
        {
            throw new ArgumentException($"chunk size {chunkSize} is not a power of two in {ImageHeader.MinChunkSize}..{ImageHeader.MaxChunkSize}", nameof(options));
        }

        if (options.EntriesPerPage < 1 || options.EntriesPerPage > 65536 || (options.EntriesPerPage & (options.EntriesPerPage - 1)) != 0)
        {
            throw new ArgumentException("entries per page must be a power of two in 1..65536", nameof(options));
        }

        if (options.DeflateLevel is < 1 or > 9)
        {
            throw new ArgumentException("deflate level must be 1..9", nameof(options));
        }

        if (options.ZstdLevel < 1 || options.ZstdLevel > ChunkCompressor.MaxZstdLevel)
        {
            throw new ArgumentException($"zstd level must be 1..{ChunkCompressor.MaxZstdLevel}", nameof(options));
        }

        if (options.Codec == ChunkCodec.Zstd && !ChunkCompressor.ZstdAvailable)
        {
            throw new ArgumentException("the zstd codec needs libzstd.so.1, which could not be loaded: install the package libzstd1", nameof(options));
        }

        var id = options.ImageId ?? Guid.NewGuid();
        byte[] salt = new byte[32];
        byte[] check = new byte[32];
        int iterations = 0;
        keys = null;

        // An incremental inherits the chain's encryption: the newest encrypted layer gives the salt and iteration count
        // (one passphrase, one key derivation for the whole chain). Plaintext new data next to an encrypted chain
        // would leak exactly what changed.
        var encryptedLayer = parent?.Layers.FirstOrDefault(l => l.IsEncrypted);
        if (options.Encrypt && options.NoEncrypt)
        {
            throw new ArgumentException("encrypt and no-encrypt were both asked for", nameof(options));
        }

        if (encryptedLayer != null && options.NoEncrypt)
        {
            throw new ArgumentException($"the parent chain is encrypted ({encryptedLayer.Path}): an incremental of it is encrypted too and cannot be written unencrypted", nameof(options));
        }

        bool encrypt = options.Encrypt || encryptedLayer != null;
        if (encrypt)
        {
            var passphrase = options.Passphrase ?? throw new ArgumentException(
                encryptedLayer != null ? $"the parent chain is encrypted ({encryptedLayer.Path}): a passphrase is needed to encrypt the incremental" : "encryption needs a passphrase",
                nameof(options));
            if (encryptedLayer != null)
            {
                // The passphrase must be the chain's (else one chain would need two passphrases). The master key is
                // cached by the source, so this check costs no second derivation.
                ImageKeys.Open(encryptedLayer.Header, passphrase, encryptedLayer.Path).Dispose();
                salt = encryptedLayer.Header.KdfSalt; // same passphrase, same salt: the chain derives its master key once
                iterations = encryptedLayer.Header.KdfIterations;
            }
            else
            {
                if (options.KdfIterations < BackupOptions.MinKdfIterations || options.KdfIterations > ImageHeader.MaxKdfIterations)
                {
                    throw new ArgumentException($"key derivation iterations must be {BackupOptions.MinKdfIterations}..{ImageHeader.MaxKdfIterations}", nameof(options));
                }

                RandomNumberGenerator.Fill(salt);
                iterations = options.KdfIterations;
            }

            keys = ImageKeys.Create(passphrase, salt, iterations, id, out check);
        }

        return new ImageHeader
        {
            ImageId = id,
            ParentId = parent?.Top.Id ?? Guid.Empty,
            DiskSize = length,
            ChunkSize = chunkSize,
            EntriesPerPage = options.EntriesPerPage,
            CreatedUtc = DateTime.UtcNow,
            Codec = options.Codec,
            Encryption = encrypt ? EncryptionMethod.Aes256GcmPbkdf2Sha256 : EncryptionMethod.None,
            KdfIterations = iterations,
            KdfSalt = salt,
            KeyCheck = check,
            Flags = parent == null ? ImageHeaderFlags.None : ImageHeaderFlags.ParentBound,
            ParentBinding = parent == null ? new byte[ParentBinding.Size] : ParentBinding.ForChildren(parent.Top.Header, parent.Top.Trailer),
        };
    }

    private static string Bytes(long n) => n >= 1 << 20 ? $"{n / (1024.0 * 1024):F1} MiB" : $"{n / 1024.0:F1} KiB";
}
