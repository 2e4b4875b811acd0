using System.Net.Http.Headers;
using System.Text.Json;
using BackupFuse.BackupImage.Storage;

namespace BackupFuse.Remote;

// Design notes:
// - Read-only. A directory URL (ending in '/') is listed through nginx's JSON autoindex
//   (autoindex on; autoindex_format json;): an array of {"name", "type", "size", ...}; the regular files named
//   *.bfi are the images (not recursive). A URL naming one *.bfi is a repository of that one image (servers without
//   a listing work that way).
// - Root, Contains, Open and the listed sizes are RemoteRepository's (the same for S3). Thread-safe; the HttpClient
//   is shared.

/// <summary>Backup images in a web server's directory (or one image URL).</summary>
public sealed class HttpRepository : RemoteRepository
{
    private readonly HttpClient _client;

    /// <summary>A repository over <paramref name="root"/> (a directory URL ending in '/', or one image URL).</summary>
    public HttpRepository(HttpClient client, RemoteLocation root, RemoteRepositoryOptions options)
        : base(root, options, RemoteKind.Http, "http(s)")
    {
        ArgumentNullException.ThrowIfNull(client);
        _client = client;
    }

    /// <inheritdoc/>
    protected override IEnumerable<(string Url, long? Size)> ListImages()
    {
        var entries = Options.Retry.Run($"{Location}: cannot list", ListAttempt, _ => null);
        foreach (var (name, size) in entries)
        {
            if (name.EndsWith(".bfi", StringComparison.Ordinal) && !name.Contains('/', StringComparison.Ordinal) && name is not ("." or ".."))
            {
                string url;
                try
                {
                    url = Root.Child(name).Url;
                }
                catch (FormatException)
                {
                    continue;
                }

                yield return (url, size);
            }
        }
    }

    /// <inheritdoc/>
    protected override IImageObject OpenImage(RemoteLocation location, long? knownLength) =>
        HttpImageObject.Open(_client, location, Options.Retry, knownLength);

    private async Task<List<(string Name, long? Size)>> ListAttempt(CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Root.Url);
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
                if (TryReadEntry(e) is { } entry)
                {
                    result.Add(entry);
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

    /// <summary>A file entry of the listing (name, and size when it is a non-negative integer), or null.</summary>
    private static (string Name, long? Size)? TryReadEntry(JsonElement e)
    {
        // The body is the server's. JsonDocument checks only the structure: a string that is not valid UTF-8, or an
        // escaped lone surrogate ("\ud800") in a value or in a property name, makes GetString, ValueEquals and even
        // TryGetProperty throw InvalidOperationException, as does GetString or TryGetInt64 on a field of another JSON
        // type. Such an entry is not a file entry, and such a size is no size; the other entries still count
        // (found by the http-listing fuzz target).
        try
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String ||
                (e.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.ValueEquals("file"))))
            {
                return null;
            }

            long? size = e.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long v) && v >= 0 ? v : null;
            return (name.GetString()!, size);
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
