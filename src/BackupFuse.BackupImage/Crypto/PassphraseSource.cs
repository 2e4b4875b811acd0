using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace BackupFuse.BackupImage.Crypto;

// Design notes:
// - A passphrase comes from a file or an environment variable, never from the command line. It is read lazily, the
//   first time an encrypted image needs it, so opening plain images with a configured but absent variable works.
// - The passphrase text never appears in ToString, exception messages or logs: only the Description (where it
//   comes from) does.
// - PBKDF2 is slow on purpose; the derived master key is cached per (salt, iterations), so a chain whose images share
//   a salt (the writer reuses the parent's) derives once. Per-image keys come from the master key through HKDF with
//   the image id, so sharing a salt never shares a GCM key.

/// <summary>Where the passphrase for encrypted images comes from (a file or an environment variable).</summary>
public sealed class PassphraseSource
{
    /// <summary>The environment variable the CLI reads when nothing else is given.</summary>
    public const string DefaultEnvironmentVariable = "BACKUPFUSE_PASSPHRASE";

    private readonly Func<byte[]> _load;
    private readonly ConcurrentDictionary<string, byte[]> _masterKeys = new();
    private readonly object _lock = new();
    private byte[]? _passphrase;

    private PassphraseSource(string description, Func<byte[]> load)
    {
        Description = description;
        _load = load;
    }

    /// <summary>Where the passphrase comes from, safe to print ("file /etc/x", "environment variable X").</summary>
    public string Description { get; }

    /// <summary>The passphrase is the content of <paramref name="path"/>, without one trailing line break.</summary>
    public static PassphraseSource FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new PassphraseSource($"file {path}", () =>
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cannot read passphrase file {path}: {e.Message}", e);
            }

            int n = bytes.Length;
            if (n > 0 && bytes[n - 1] == (byte)'\n')
            {
                n--;
                if (n > 0 && bytes[n - 1] == (byte)'\r')
                {
                    n--;
                }
            }

            if (n == 0)
            {
                throw new PassphraseException($"passphrase file {path} is empty");
            }

            var result = bytes[..n];
            CryptographicOperations.ZeroMemory(bytes);
            return result;
        });
    }

    /// <summary>The passphrase is the value of the environment variable <paramref name="name"/>.</summary>
    public static PassphraseSource FromEnvironment(string name = DefaultEnvironmentVariable)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new PassphraseSource($"environment variable {name}", () =>
        {
            string? value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(value))
            {
                throw new PassphraseException($"environment variable {name} (passphrase) is not set or empty");
            }

            return Encoding.UTF8.GetBytes(value);
        });
    }

    /// <summary>A passphrase given in memory (for programs and tests; the CLI never takes one on its command line).</summary>
    public static PassphraseSource FromString(string passphrase)
    {
        ArgumentException.ThrowIfNullOrEmpty(passphrase);
        byte[] bytes = Encoding.UTF8.GetBytes(passphrase);
        return new PassphraseSource("passphrase given by the program", () => bytes);
    }

    /// <summary>Whether the passphrase can be read (the file exists, the variable is set); <paramref name="problem"/> says why not.</summary>
    public bool TryLoad(out string? problem)
    {
        try
        {
            _ = Passphrase();
            problem = null;
            return true;
        }
        catch (PassphraseException e)
        {
            problem = e.Message;
            return false;
        }
    }

    /// <summary>The master key for a salt and iteration count: PBKDF2-HMAC-SHA256, 32 bytes, cached.</summary>
    internal byte[] DeriveMasterKey(ReadOnlySpan<byte> salt, int iterations)
    {
        string cacheKey = Convert.ToHexString(salt) + ":" + iterations;
        if (_masterKeys.TryGetValue(cacheKey, out var key))
        {
            return key;
        }

        key = Rfc2898DeriveBytes.Pbkdf2(Passphrase(), salt, iterations, HashAlgorithmName.SHA256, 32);
        return _masterKeys.GetOrAdd(cacheKey, key);
    }

    private byte[] Passphrase()
    {
        lock (_lock)
        {
            return _passphrase ??= _load();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Description;
}
