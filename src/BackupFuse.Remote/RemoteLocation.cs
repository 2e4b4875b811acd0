using System.Text.RegularExpressions;

namespace BackupFuse.Remote;

/// <summary>The kind of store a <see cref="RemoteLocation"/> names.</summary>
public enum RemoteKind
{
    /// <summary>An S3-compatible object store (<c>s3://BUCKET/KEY</c>).</summary>
    S3,

    /// <summary>A web server (<c>http://</c> or <c>https://</c>), read-only.</summary>
    Http,
}

// Design notes:
// - One normal form per remote address, so that "is this image inside that root?" is a plain prefix comparison of
//   two strings: lower-case scheme (and host for HTTP), no default port, dot segments resolved or refused, no
//   query, no fragment, no user info. A root ends in '/' (a directory or prefix) or names one image (*.bfi).
// - Secrets never enter a location: user info (user:password@) and query strings (a presigned URL's signature) are
//   refused with a clear message, because locations are printed, logged and written into plugin files.
// - Dot segments: HTTP servers resolve "/a/../b" (also spelled %2e%2e) before they look for a file, S3 does not;
//   so for both kinds "." and ".." segments and encoded dots and slashes are refused outright: nothing can climb
//   out of a root by spelling.
// - Immutable; thread-safe.

/// <summary>A parsed, normalized remote address: an S3 object or prefix, or an HTTP(S) file or directory.</summary>
public sealed partial class RemoteLocation : IEquatable<RemoteLocation>
{
    private RemoteLocation(RemoteKind kind, string url, string bucket, string key)
    {
        Kind = kind;
        Url = url;
        Bucket = bucket;
        Key = key;
    }

    /// <summary>S3 or HTTP.</summary>
    public RemoteKind Kind { get; }

    /// <summary>The normalized address (<c>s3://bucket/key</c> or an absolute http(s) URL), never holding a secret.</summary>
    public string Url { get; }

    /// <summary>The bucket (S3 only, else empty).</summary>
    public string Bucket { get; }

    /// <summary>The object key or prefix (S3 only, else empty); empty for the whole bucket.</summary>
    public string Key { get; }

    /// <summary>Whether this names a directory or prefix (ends in '/') rather than one object.</summary>
    public bool IsDirectory => Url.EndsWith('/');

    /// <summary>The last path component (the object's name), empty for a directory.</summary>
    public string Name => Url[(Url.LastIndexOf('/') + 1)..];

    /// <summary>Whether <paramref name="text"/> starts with a remote scheme (s3://, http://, https://).</summary>
    public static bool IsRemote(string text) => BackupFuse.BackupImage.Storage.ImageAddress.IsRemote(text);

    /// <summary>Parses an object or directory address.</summary>
    /// <exception cref="FormatException">Not a valid remote address; the message says why (and never repeats a secret).</exception>
    public static RemoteLocation Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.StartsWith("s3://", StringComparison.OrdinalIgnoreCase))
        {
            return ParseS3(text);
        }

        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            return ParseHttp(text);
        }

        throw new FormatException($"{text}: not a remote address (s3://BUCKET/KEY, http://HOST/PATH or https://HOST/PATH)");
    }

    /// <summary>Parses a repository root: an address ending in '/' or naming one *.bfi image; anything else gets a '/' added.</summary>
    /// <exception cref="FormatException">Not a valid remote address.</exception>
    public static RemoteLocation ParseRoot(string text)
    {
        var location = Parse(text);
        return location.IsDirectory || location.Url.EndsWith(".bfi", StringComparison.Ordinal) ? location : Parse(location.Url + "/");
    }

    /// <summary>Parses <paramref name="text"/>, or returns null when it is not a valid remote address.</summary>
    public static RemoteLocation? TryParse(string? text)
    {
        if (text == null || !IsRemote(text))
        {
            return null;
        }

        try
        {
            return Parse(text);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>The object named <paramref name="name"/> (one path component, as the listing gives it) in this directory.</summary>
    public RemoteLocation Child(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!IsDirectory)
        {
            throw new InvalidOperationException($"{Url} is not a directory");
        }

        return Kind == RemoteKind.S3 ? Parse(Url + name) : Parse(Url + Uri.EscapeDataString(name));
    }

    /// <summary>Whether <paramref name="other"/> equals this location or, for a directory, lies anywhere below it.</summary>
    public bool Contains(RemoteLocation other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return other.Kind == Kind && (IsDirectory ? other.Url.StartsWith(Url, StringComparison.Ordinal) : other.Url == Url);
    }

    /// <inheritdoc/>
    public bool Equals(RemoteLocation? other) => other != null && other.Url == Url;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as RemoteLocation);

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Url);

    /// <inheritdoc/>
    public override string ToString() => Url;

    private static RemoteLocation ParseS3(string text)
    {
        string rest = text["s3://".Length..];
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string bucket = slash < 0 ? rest : rest[..slash];
        string key = slash < 0 ? string.Empty : rest[(slash + 1)..];
        if (bucket.Contains('@', StringComparison.Ordinal) || bucket.Contains(':', StringComparison.Ordinal))
        {
            throw new FormatException("an s3:// address must not carry credentials or a port (s3://BUCKET/KEY; credentials come from the environment or profile, the endpoint from --s3-endpoint)");
        }

        if (!BucketName().IsMatch(bucket))
        {
            throw new FormatException($"s3://{bucket}: not a valid bucket name (3-63 characters: lower-case letters, digits, '.', '-')");
        }

        string url = "s3://" + bucket + "/" + key;
        if (key.Contains('?', StringComparison.Ordinal) || key.Contains('#', StringComparison.Ordinal))
        {
            throw new FormatException($"s3://{bucket}/...: '?' and '#' are not accepted in an s3:// address");
        }

        CheckSegments(key, url);
        return new RemoteLocation(RemoteKind.S3, url, bucket, key);
    }

    private static RemoteLocation ParseHttp(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || uri.Host.Length == 0)
        {
            throw new FormatException($"{RedactUserInfo(text)}: not a valid http(s) URL");
        }

        if (uri.UserInfo.Length > 0)
        {
            throw new FormatException($"{uri.Scheme}://{uri.Authority}/...: credentials in a URL are not accepted (they would show in process lists, logs and plugin files)");
        }

        if (uri.Query.Length > 0 || uri.Fragment.Length > 0 || text.Contains('?', StringComparison.Ordinal))
        {
            throw new FormatException($"{uri.Scheme}://{uri.Authority}{uri.AbsolutePath}: a query string is not accepted (a signed URL would put its signature into logs and plugin files)");
        }

        // Dot segments are refused before Uri resolves them: "/images/../etc" must not quietly become "/etc".
        string rawPath = text[(text.IndexOf("//", StringComparison.Ordinal) + 2)..];
        int pathStart = rawPath.IndexOf('/', StringComparison.Ordinal);
        rawPath = pathStart < 0 ? string.Empty : rawPath[(pathStart + 1)..];
        string url = uri.AbsoluteUri;
        CheckSegments(rawPath, url);
        if (rawPath.Contains('\\', StringComparison.Ordinal))
        {
            throw new FormatException($"{url}: a backslash is not accepted in a URL path");
        }

        return new RemoteLocation(RemoteKind.Http, url, string.Empty, string.Empty);
    }

    private static void CheckSegments(string path, string shown)
    {
        var segments = path.Split('/');
        for (int i = 0; i < segments.Length; i++)
        {
            string s = segments[i];
            string decoded = s.Replace("%2e", ".", StringComparison.OrdinalIgnoreCase).Replace("%3b", ";", StringComparison.OrdinalIgnoreCase);
            int parameters = decoded.IndexOf(';', StringComparison.Ordinal);
            string name = parameters < 0 ? decoded : decoded[..parameters]; // Tomcat/Jetty read "..;x" as ".."
            if (name is "." or "..")
            {
                throw new FormatException($"{shown}: '.' and '..' path segments are not accepted");
            }

            if (s.Contains("%2f", StringComparison.OrdinalIgnoreCase) || s.Contains("%5c", StringComparison.OrdinalIgnoreCase))
            {
                throw new FormatException($"{shown}: an encoded '/' or '\\' is not accepted in a path");
            }

            if (s.Length == 0 && i < segments.Length - 1 && path.Length > 0)
            {
                throw new FormatException($"{shown}: empty path segments ('//') are not accepted");
            }
        }
    }

    private static string RedactUserInfo(string text)
    {
        int scheme = text.IndexOf("//", StringComparison.Ordinal);
        int at = text.IndexOf('@', StringComparison.Ordinal);
        int slash = scheme < 0 ? -1 : text.IndexOf('/', scheme + 2);
        return scheme >= 0 && at > scheme && (slash < 0 || at < slash) ? text[..(scheme + 2)] + "***@" + text[(at + 1)..] : text;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();
}
