using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - Read-only. A directory URL (ending in '/') is listed through nginx's JSON autoindex
//   (autoindex on; autoindex_format json;): an array of {"name", "type", "size", ...}; the regular files named
//   *.bfi are the images (not recursive). A URL naming one *.bfi is a repository of that one image (servers without
//   a listing work that way).
// - Contains is a prefix match on normalized URLs (RemoteLocation refuses dot segments and encoded slashes).
// - Every object opened goes through RemoteRepositoryOptions.WrapObject. Thread-safe; the HttpClient is shared.

/// <summary>Backup images in a web server's directory (or one image URL).</summary>
public sealed class HttpRepository : IImageRepository
{
    private readonly HttpClient _client;
    private readonly RemoteLocation _root;
    private readonly RemoteRepositoryOptions _options;
    private readonly ConcurrentDictionary<string, long> _listedSizes = new(StringComparer.Ordinal);

    /// <summary>A repository over <paramref name="root"/> (a directory URL ending in '/', or one image URL).</summary>
    public HttpRepository(HttpClient client, RemoteLocation root, RemoteRepositoryOptions options)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(options);
        if (root.Kind != RemoteKind.Http)
        {
            throw new ArgumentException($"{root}: not an http(s) location", nameof(root));
        }

        _client = client;
        _root = root;
        _options = options;
    }

    /// <inheritdoc/>
    public string Location => _root.Url;

    /// <inheritdoc/>
    public bool IsRemote => true;

    /// <inheritdoc/>
    public IReadOnlyList<string> List()
    {
        if (!_root.IsDirectory)
        {
            return [_root.Url];
        }

        var entries = _options.Retry.Run($"{Location}: cannot list", ListAttempt, _ => null);
        var found = new List<string>();
        foreach (var (name, size) in entries)
        {
            if (name.EndsWith(".bfi", StringComparison.Ordinal) && !name.Contains('/', StringComparison.Ordinal) && name is not ("." or ".."))
            {
                string url;
                try
                {
                    url = _root.Child(name).Url;
                }
                catch (FormatException)
                {
                    continue;
                }

                found.Add(url);
                if (size is { } s)
                {
                    _listedSizes[url] = s;
                }
            }
        }

        found.Sort(StringComparer.Ordinal);
        return found;
    }

    /// <inheritdoc/>
    public bool Contains(string address) => RemoteLocation.TryParse(address) is { } location && _root.Contains(location);

    /// <inheritdoc/>
    public IImageObject Open(string address)
    {
        var location = RemoteLocation.Parse(address);
        if (!_root.Contains(location))
        {
            throw new IOException($"{address}: not inside {Location}");
        }

        IImageObject image = HttpImageObject.Open(_client, location, _options.Retry, _listedSizes.TryGetValue(location.Url, out long size) ? size : null);
        return RemoteRepositoryOptions.Wrap(_options.WrapObject, image);
    }

    /// <inheritdoc/>
    public override string ToString() => Location;

    private async Task<List<(string Name, long? Size)>> ListAttempt(CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, _root.Url);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new RemoteAttemptException(RemoteError.FromStatus((int)response.StatusCode));
        }

        if (response.Content.Headers.ContentLength > 64L << 20)
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final, "the directory listing is larger than 64 MiB"));
        }

        var result = new List<(string, long?)>();
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            using var doc = await JsonDocument.ParseAsync(body, default, ct).ConfigureAwait(false);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw new JsonException("not an array");
            }

            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String &&
                    (!e.TryGetProperty("type", out var type) || type.GetString() == "file"))
                {
                    long? size = e.TryGetProperty("size", out var s) && s.TryGetInt64(out long v) ? v : null;
                    result.Add((name.GetString()!, size));
                }
            }
        }
        catch (JsonException)
        {
            throw new RemoteAttemptException(new RemoteError(RemoteErrorKind.Final,
                "not a JSON directory listing (nginx: 'autoindex on; autoindex_format json;'), or name one image URL instead of the directory"));
        }

        return result;
    }
}
