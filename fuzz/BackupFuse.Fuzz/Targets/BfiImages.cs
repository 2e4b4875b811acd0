using BackupFuse.BackupImage.Crypto;
using BackupFuse.BackupImage.Format;
using BackupFuse.BackupImage.Reading;
using BackupFuse.BackupImage.Writing;

namespace BackupFuse.Fuzz.Targets;

// Design notes:
// - What the two .bfi targets share: opening an input through the public reader (BackupImageFile.Open over an
//   in-memory IImageObject), then reading every chunk of the disk that has an index page, as the daemon and verify do
//   (GetEntry; ReadChunk, two part reads (TryReadChunkPart: sector checksums) and VerifyChunk for Data). Chunks
//   without a page are Absent: nothing to read, so a header claiming a huge disk costs nothing, as it costs the
//   daemon nothing.
// - Seeds are written by BackupWriter from a small made-up disk (4 KiB chunks, 4 entries per page so that there are
//   several pages): every codec, an incremental with Zero chunks, and damaged copies (truncated, a flipped payload bit).

/// <summary>Shared reading and seed writing of the .bfi targets.</summary>
internal static class BfiImages
{
    /// <summary>The passphrase of the encrypted seeds and target.</summary>
    public static readonly PassphraseSource Passphrase = PassphraseSource.FromString("fuzz passphrase");

    /// <summary>Opens <paramref name="input"/> (checksums fixed up) and reads every chunk that has an index page.</summary>
    public static void OpenAndReadAll(byte[] input, PassphraseSource? passphrase)
    {
        BfiCrcFixup.FixUp(input);
        using var image = BackupImageFile.Open(new MemoryImageObject(input), passphrase, pageCacheCapacity: 2);
        _ = image.GetInfo();
        byte[] buffer = new byte[image.ChunkSize];
        long chunk = image.NextChunkInAnyPage(0);
        while (chunk < image.ChunkCount)
        {
            var entry = image.GetEntry(chunk);
            if (entry.Kind == ChunkKind.Data)
            {
                var span = buffer.AsSpan(0, image.ChunkLength(chunk));
                image.ReadChunk(chunk, span);
                _ = image.TryReadChunkPart(chunk, 0, span[..Math.Min(4096, span.Length)]); // a first sector, alone
                _ = image.TryReadChunkPart(chunk, span.Length / 3, span[..Math.Max(1, span.Length / 3)]); // unaligned
                image.VerifyChunk(chunk, buffer);
            }

            chunk = image.NextChunkInAnyPage(chunk + 1);
        }
    }

    /// <summary>A 96 KiB disk: text, zeros, a repeated chunk (deduplicated), random bytes, a short last chunk.</summary>
    public static byte[] Disk()
    {
        var disk = new byte[(96 * 1024) - 1000];
        var text = "BackupFuse fuzz seed: the quick brown fox jumps over the lazy dog. "u8;
        for (int i = 0; i < 16 * 1024; i++)
        {
            disk[i] = text[i % text.Length];
        }

        new Random(19).NextBytes(disk.AsSpan(40 * 1024, 8 * 1024));
        disk.AsSpan(0, 4096).CopyTo(disk.AsSpan(64 * 1024));
        disk.AsSpan(80 * 1024, 100).Fill(0xA5);
        return disk;
    }

    /// <summary>Writes full, incremental, per-codec and damaged seeds; encrypted ones when <paramref name="encrypted"/>.</summary>
    public static void WriteSeeds(string directory, bool encrypted)
    {
        string work = Path.Combine(directory, ".work");
        Directory.CreateDirectory(work);
        try
        {
            var disk = Disk();
            BackupOptions Options(ChunkCodec codec, BackupChain? parent) => new()
            {
                ChunkSize = 4096,
                EntriesPerPage = 4,
                Codec = codec,
                WorkerCount = 1,
                Parent = parent,
                Encrypt = encrypted,
                NoEncrypt = !encrypted,
                Passphrase = encrypted ? Passphrase : null,
                KdfIterations = BackupOptions.MinKdfIterations,
            };

            string full = Path.Combine(work, "full.bfi");
            BackupWriter.Backup(new ByteSource(disk), full, Options(ChunkCodec.Deflate, null));
            Keep(full, directory, "full-deflate");
            if (!encrypted)
            {
                foreach (var codec in new[] { ChunkCodec.None, ChunkCodec.Zstd })
                {
                    string other = Path.Combine(work, $"full-{codec}.bfi");
                    BackupWriter.Backup(new ByteSource(disk), other, Options(codec, null));
                    Keep(other, directory, $"full-{codec.ToString().ToLowerInvariant()}");
                }
            }

            var changed = (byte[])disk.Clone();
            changed.AsSpan(4096, 4096).Clear();
            changed.AsSpan(20 * 1024, 3000).Fill(0x5A);
            using (var chain = BackupChain.Open(full, passphrase: encrypted ? Passphrase : null))
            {
                string incremental = Path.Combine(work, "incremental.bfi");
                BackupWriter.Backup(new ByteSource(changed), incremental, Options(ChunkCodec.Zstd, chain));
                Keep(incremental, directory, "incremental");
            }

            byte[] bytes = File.ReadAllBytes(full);
            File.WriteAllBytes(Path.Combine(directory, "damaged-truncated"), bytes[..^200]);
            bytes[700] ^= 0x10;
            File.WriteAllBytes(Path.Combine(directory, "damaged-bitflip"), bytes);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static void Keep(string image, string directory, string name) => File.Copy(image, Path.Combine(directory, name), overwrite: true);
}
