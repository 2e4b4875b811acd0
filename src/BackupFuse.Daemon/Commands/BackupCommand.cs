using System.CommandLine;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Storage;
using BackupFuse.BackupImage.Writing;
using BackupFuse.Daemon.Cli;
using BackupFuse.Remote;
using Serilog;

namespace BackupFuse.Daemon.Commands;

/// <summary><c>backupfuse backup</c>: one backup point of a disk, full or incremental.</summary>
public static class BackupCommand
{
    /// <summary>
    /// The codec a backup uses without <c>--codec</c>: zstd (level 3), which backs up faster, stores less and reads faster
    /// than Deflate on the benchmark data (docs/format.md, section 10); deflate where libzstd.so.1 cannot be loaded.
    /// </summary>
    public static string DefaultCodec => ChunkCompressor.ZstdAvailable ? "zstd" : "deflate";

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var source = new Argument<string>("source") { Description = "Disk to back up: a block device (/dev/sdb) or a raw image file. Holes of sparse files are skipped." };
        var dest = new Argument<string>("dest") { Description = "Image file to write (.bfi), s3://BUCKET/PREFIX/NAME.bfi (streamed by multipart upload, no local copy), or - for standard output. An existing file or object is never overwritten." };
        var parent = new Option<string?>("--parent") { Description = "Make an incremental: store only the chunks that differ from this image's chain (its data is not re-read); a path or s3:// / https:// URL." };
        var images = ImagesOption.Create();
        var codec = new Option<string>("--codec")
        {
            Description = $"Chunk compression: deflate, zstd (through the system's libzstd) or none; default {DefaultCodec}. Images of a chain may use different codecs.",
            DefaultValueFactory = _ => DefaultCodec,
        };
        codec.Validators.Add(r =>
        {
            string? value = r.GetValueOrDefault<string>();
            if (value is not ("deflate" or "zstd" or "none"))
            {
                r.AddError($"--codec {value}: unknown codec; valid codecs: deflate, zstd, none");
            }
        });
        var level = new Option<int?>("--level")
        {
            Description = $"Compression level: Deflate 1 (fastest) to 9 (smallest), default {ChunkCompressor.DefaultLevel}; zstd 1 to {ChunkCompressor.MaxZstdLevel}, default {ChunkCompressor.DefaultZstdLevel} " +
                "(see docs/format.md for the measurement). Readers do not need it.",
        };
        var chunkSize = new Option<int?>("--chunk-size") { Description = $"Chunk size in KiB, a power of two (default {BackupOptions.DefaultChunkSize / 1024}; an incremental uses its parent's)." };
        var encrypt = new Option<bool>("--encrypt")
        {
            Description = "Encrypt every chunk with AES-256-GCM; the key comes from the passphrase (file or environment, never the command line). " +
                "An incremental of an encrypted chain is always encrypted, with the chain's key parameters.",
        };
        var noEncrypt = new Option<bool>("--no-encrypt") { Description = "Insist on an unencrypted image; refused when the parent chain is encrypted." };
        var volume = new Option<bool>("--volume")
        {
            Description = "The source is a volume (a file-system image file): record it, with its file system, so that a plugin shows it as a disk " +
                "with a synthesized partition table. Partitions and device-mapper devices (LVM) are detected without it.",
        };
        var allBlocks = new Option<bool>("--all-blocks") { Description = "For a volume: store every block, also those its file system marks free (default: used blocks only for ext2/3/4, XFS and NTFS)." };
        var files = new Option<bool>("--files")
        {
            Description = "Back up FILES, not a disk: the source is a directory (its tree: files, directories, symlinks, modes, times), or - for a tar " +
                "stream (ustar, pax or GNU) on standard input, written to a local file. --parent stores only files whose content changed.",
        };
        var passphrase = new PassphraseOptions();
        var command = new Command("backup",
            "Back up a disk into one image file (a backup point), full or incremental.\n\n" +
            "Examples:\n" +
            "  backupfuse backup /dev/sdb /backups/web01-full.bfi\n" +
            "  backupfuse backup /dev/sdb /backups/web01-1122.bfi --parent /backups/web01-full.bfi\n" +
            "  BACKUPFUSE_PASSPHRASE=... backupfuse backup disk.raw /backups/disk.bfi --encrypt\n" +
            "  backupfuse backup disk.raw - > /mnt/tape/disk.bfi\n" +
            "  backupfuse backup /dev/sdb2 /backups/web01-root.bfi        (a partition: a volume, used blocks only)\n" +
            "  backupfuse backup root.ext4 /backups/root.bfi --volume\n" +
            "  backupfuse backup /dev/sdb s3://backups/web01/web01-1122.bfi --parent s3://backups/web01/web01-full.bfi\n" +
            "  backupfuse backup --files /srv/www /backups/www-full.bfi          (a directory tree: a file-level backup)\n" +
            "  backupfuse backup --files /srv/www /backups/www-1122.bfi --parent /backups/www-full.bfi\n" +
            "  tar c -C /srv/www . | backupfuse backup --files - /backups/www.bfi");
        command.Arguments.Add(source);
        command.Arguments.Add(dest);
        command.Options.Add(parent);
        command.Options.Add(images);
        command.Options.Add(codec);
        command.Options.Add(level);
        command.Options.Add(chunkSize);
        command.Options.Add(encrypt);
        command.Options.Add(noEncrypt);
        command.Options.Add(volume);
        command.Options.Add(allBlocks);
        command.Options.Add(files);
        command.Validators.Add(r =>
        {
            string? c = r.GetValue(codec);
            int max = c == "zstd" ? ChunkCompressor.MaxZstdLevel : 9;
            if (r.GetValue(level) is { } l && c != "none" && (l < 1 || l > max))
            {
                r.AddError($"--level must be 1..{max} for {c} (got {l})");
            }
            else if (r.GetValue(level) != null && c == "none")
            {
                r.AddError("--level needs a compression codec; --codec none has no level");
            }

            if (r.GetValue(encrypt) && r.GetValue(noEncrypt))
            {
                r.AddError("--encrypt and --no-encrypt contradict each other; give one");
            }

            if (r.GetValue(files) && (r.GetValue(volume) || r.GetValue(allBlocks)))
            {
                r.AddError("--files backs up a tree of files; --volume and --all-blocks are for disks and volumes");
            }
        });
        passphrase.AddTo(command);
        command.SetGuardedAction((parse, token) =>
        {
            string src = parse.GetValue(source)!;
            string dst = parse.GetValue(dest)!;
            if (parse.GetValue(files))
            {
                return BackupFiles(parse, src, dst, passphrase, parent, images, codec, level, chunkSize, encrypt, noEncrypt, token);
            }

            if (!File.Exists(src))
            {
                throw new CliError($"{src}: no such file or block device");
            }

            var pass = passphrase.Resolve(parse);
            string? parentPath = parse.GetValue(parent);
            using var chain = parentPath == null ? null : BackupChain.Open(parentPath, ImagesOption.Catalog(parse, images, parentPath), pass);
            var common = CommonOptions(parse, chain, pass, codec, level, chunkSize, encrypt, noEncrypt);
            string? detected = BackupFuse.BackupImage.Volumes.VolumeDetection.Detect(src);
            bool isVolume = parse.GetValue(volume) || detected != null || chain?.Top.Header.IsVolume == true;
            if (chain != null && chain.Top.Header.IsVolume != isVolume)
            {
                throw new CliError($"{src}: the parent chain ({chain.Top.Path}) holds a {(chain.Top.Header.IsVolume ? "volume" : "whole disk")}; an incremental must be of the same kind");
            }

            if (parse.GetValue(allBlocks) && !isVolume)
            {
                throw new CliError($"--all-blocks: {src} is not a volume (give --volume for a file-system image)");
            }

            var options = common with { Volume = isVolume, AllBlocks = parse.GetValue(allBlocks) };
            BackupResult result;
            string shown;
            if (ImageAddress.IsRemote(dst))
            {
                (result, shown) = BackupToRemote(parse, src, dst, options, token);
            }
            else
            {
                using (var bar = new ProgressBar(dst == "-" ? "backup" : Path.GetFileName(dst)))
                {
                    result = BackupWriter.Backup(src, dst, options, new Progress(bar), token);
                }

                shown = dst == "-" ? "stdout" : result.Destination;
            }

            if (result.VolumeNote != null)
            {
                Console.Error.WriteLine($"{src}: {result.VolumeNote}{(detected != null ? $" (detected: {detected})" : string.Empty)}");
            }

            Console.Error.WriteLine(
                $"{shown}: {(chain == null ? "full" : "incremental")} backup {result.ImageId} of {Bytes.Format(result.DiskSize)}" +
                $" -> {Bytes.Format(result.ImageSize)} in {result.Elapsed.TotalSeconds:F1} s" +
                $" ({result.DataChunks} data, {result.ZeroChunks} zero, {result.AbsentChunks} {(chain == null ? "hole" : "unchanged")} chunks)");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The options block and file backups share: chunk size, codec and level, encryption; checked.</summary>
    private static BackupOptions CommonOptions(ParseResult parse, BackupChain? chain, BackupFuse.BackupImage.Crypto.PassphraseSource? pass, Option<string> codec, Option<int?> level, Option<int?> chunkSize,
        Option<bool> encrypt, Option<bool> noEncrypt)
    {
        int? kib = parse.GetValue(chunkSize);
        if (kib is { } k && (k < ImageHeader.MinChunkSize / 1024 || k > ImageHeader.MaxChunkSize / 1024 || (k & (k - 1)) != 0))
        {
            throw new CliError($"--chunk-size {k}: must be a power of two from {ImageHeader.MinChunkSize / 1024} to {ImageHeader.MaxChunkSize / 1024} (KiB)");
        }

        var encryptedLayer = chain?.Layers.FirstOrDefault(l => l.IsEncrypted);
        if (encryptedLayer != null && parse.GetValue(noEncrypt))
        {
            throw new CliError($"--no-encrypt: the parent chain is encrypted ({encryptedLayer.Path}); an incremental of it is always encrypted");
        }

        var chosen = parse.GetValue(codec) switch { "none" => ChunkCodec.None, "zstd" => ChunkCodec.Zstd, _ => ChunkCodec.Deflate };
        if (chosen == ChunkCodec.Zstd && !ChunkCompressor.ZstdAvailable)
        {
            throw new CliError("--codec zstd: libzstd.so.1 could not be loaded; install the package libzstd1 (or use --codec deflate)");
        }

        return new BackupOptions
        {
            Parent = chain,
            Codec = chosen,
            ChunkSize = kib * 1024,
            DeflateLevel = chosen == ChunkCodec.Deflate && parse.GetValue(level) is { } dl ? dl : ChunkCompressor.DefaultLevel,
            ZstdLevel = chosen == ChunkCodec.Zstd && parse.GetValue(level) is { } zl ? zl : ChunkCompressor.DefaultZstdLevel,
            Encrypt = parse.GetValue(encrypt),
            NoEncrypt = parse.GetValue(noEncrypt),
            Passphrase = pass,
        };
    }

    /// <summary><c>backup --files</c>: a file-level image of a directory or of a tar stream on standard input.</summary>
    private static int BackupFiles(ParseResult parse, string src, string dst, PassphraseOptions passphrase, Option<string?> parent, Option<string[]> images,
        Option<string> codec, Option<int?> level, Option<int?> chunkSize, Option<bool> encrypt, Option<bool> noEncrypt, CancellationToken token)
    {
        bool tar = src == "-";
        if (!tar && !Directory.Exists(src))
        {
            throw new CliError($"{src}: no such directory (--files backs up a directory, or - for a tar stream on standard input)");
        }

        if (tar && (dst == "-" || ImageAddress.IsRemote(dst)))
        {
            throw new CliError($"--files - (a tar stream) writes to a local image file: its header is completed at the end, so {(dst == "-" ? "standard output" : dst)} cannot take it; back up a directory to stream");
        }

        var pass = passphrase.Resolve(parse);
        string? parentPath = parse.GetValue(parent);
        using var chain = parentPath == null ? null : BackupChain.Open(parentPath, ImagesOption.Catalog(parse, images, parentPath), pass);
        if (chain != null && !BackupFuse.BackupImage.Files.FileImageFields.IsFileImage(chain.Top.Header))
        {
            throw new CliError($"--parent {parentPath}: a disk backup; an incremental of files needs a file-level backup (backup --files) as its parent");
        }

        var options = CommonOptions(parse, chain, pass, codec, level, chunkSize, encrypt, noEncrypt);
        BackupFuse.BackupImage.Files.FileBackupResult result;
        string shown;
        if (ImageAddress.IsRemote(dst))
        {
            S3MultipartUploadStream upload;
            try
            {
                upload = RemoteOptions.Stores(parse).Upload(dst, warn: m => Log.Warning("{Message}", m));
            }
            catch (FormatException e)
            {
                throw new CliError(e.Message);
            }

            using (upload)
            {
                using (var bar = new ProgressBar(ImageAddress.NameOf(upload.Location)))
                {
                    result = BackupFuse.BackupImage.Files.FileImageWriter.BackupDirectory(src, upload, options, new Progress(bar), token);
                }

                upload.Complete();
                shown = upload.Location;
            }
        }
        else
        {
            using (var bar = new ProgressBar(dst == "-" ? "backup" : Path.GetFileName(dst)))
            {
                result = tar
                    ? BackupFuse.BackupImage.Files.FileImageWriter.BackupTar(Console.OpenStandardInput(), dst, options, new StreamProgress(bar), token)
                    : BackupFuse.BackupImage.Files.FileImageWriter.BackupDirectory(src, dst, options, new Progress(bar), token);
            }

            shown = dst == "-" ? "stdout" : result.Image.Destination;
        }

        var f = result.Fields;
        Console.Error.WriteLine(
            $"{shown}: {(chain == null ? "full" : "incremental")} file backup {result.Image.ImageId} of {(tar ? "a tar stream" : src)}: " +
            $"{f.Files} files, {f.Directories} directories, {f.Symlinks} symlinks, {f.Others} other, {Bytes.Format(f.ContentBytes)} of content" +
            $" ({Bytes.Format(f.NewContentBytes)} {(chain == null ? "stored" : "new or changed")}) -> {Bytes.Format(result.Image.ImageSize)} in {result.Image.Elapsed.TotalSeconds:F1} s");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Streams the image into an S3 multipart upload (no local copy): the object appears only when the writer has
    /// finished; any failure or cancellation aborts the upload (RemoteStores, S3MultipartUploadStream).
    /// </summary>
    private static (BackupResult Result, string Shown) BackupToRemote(ParseResult parse, string src, string dst, BackupOptions options, CancellationToken token)
    {
        S3MultipartUploadStream upload;
        try
        {
            upload = RemoteOptions.Stores(parse).Upload(dst, warn: m => Log.Warning("{Message}", m));
        }
        catch (FormatException e)
        {
            throw new CliError(e.Message);
        }

        using (upload)
        {
            BackupResult result;
            using (var bar = new ProgressBar(ImageAddress.NameOf(upload.Location)))
            {
                result = BackupWriter.Backup(src, upload, options, new Progress(bar), token);
            }

            upload.Complete();
            return (result, upload.Location);
        }
    }

    // A tar stream's length is unknown: the bar shows bytes read, redrawn at most every two seconds.
    private sealed class StreamProgress(ProgressBar bar) : IProgress<BackupProgress>
    {
        private long _last = -2000;

        public void Report(BackupProgress value)
        {
            if (value.BytesTotal > 0 || Environment.TickCount64 - _last >= 2000)
            {
                _last = Environment.TickCount64;
                bar.Report(value.BytesDone, Math.Max(value.BytesTotal, value.BytesDone));
            }
        }
    }

    // Synchronous progress: System.Progress<T> would post to the thread pool and report out of order.
    private sealed class Progress(ProgressBar bar) : IProgress<BackupProgress>
    {
        public void Report(BackupProgress value) => bar.Report(value.BytesDone, value.BytesTotal);
    }
}
