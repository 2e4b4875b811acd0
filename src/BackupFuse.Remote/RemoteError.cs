namespace BackupFuse.Remote;

/// <summary>What a failed request means for the caller.</summary>
public enum RemoteErrorKind
{
    /// <summary>Worth another try: timeout, connection reset, 500/502/503/504, S3 SlowDown.</summary>
    Transient,

    /// <summary>The object does not exist (404): final.</summary>
    NotFound,

    /// <summary>Access denied or bad credentials (401/403): final.</summary>
    Denied,

    /// <summary>Any other failure that another try will not change: final.</summary>
    Final,
}

/// <summary>A classified failure: its kind and a one-line reason that never holds a secret.</summary>
/// <param name="Kind">Whether to retry, and how to report it.</param>
/// <param name="Reason">Short reason for messages (status, error code), without credentials or signed queries.</param>
public sealed record RemoteError(RemoteErrorKind Kind, string Reason)
{
    /// <summary>Classifies the transport failures every client shares (connection refused or reset, DNS, TLS, short body).</summary>
    public static RemoteError? FromTransport(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
        {
            switch (x)
            {
                case System.Net.Sockets.SocketException s:
                    return new RemoteError(RemoteErrorKind.Transient, $"connection failed ({s.SocketErrorCode})");
                case System.Security.Authentication.AuthenticationException:
                    return new RemoteError(RemoteErrorKind.Final, "TLS handshake failed (is the server's certificate trusted? see docs/remote.md)");
                case HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError }:
                    return new RemoteError(RemoteErrorKind.Final, "TLS handshake failed (is the server's certificate trusted? see docs/remote.md)");
                case HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError }:
                    return new RemoteError(RemoteErrorKind.Transient, "host name not resolved");
            }
        }

        for (Exception? x = e; x != null; x = x.InnerException)
        {
            if (x is HttpRequestException or IOException)
            {
                return new RemoteError(RemoteErrorKind.Transient, $"connection failed ({x.GetType().Name})");
            }
        }

        return null;
    }

    /// <summary>Classifies an HTTP status code (nginx, or an S3 error without a better code).</summary>
    public static RemoteError FromStatus(int status) => status switch
    {
        404 or 410 => new RemoteError(RemoteErrorKind.NotFound, $"no such object (HTTP {status})"),
        401 or 403 => new RemoteError(RemoteErrorKind.Denied, $"access denied (HTTP {status})"),
        408 or 429 or 500 or 502 or 503 or 504 => new RemoteError(RemoteErrorKind.Transient, $"server answered HTTP {status}"),
        _ => new RemoteError(RemoteErrorKind.Final, $"server answered HTTP {status}"),
    };
}

/// <summary>A failed attempt whose meaning is already known (a bad answer from the server): the retry loop classifies it as given.</summary>
public sealed class RemoteAttemptException(RemoteError error) : Exception(error.Reason)
{
    /// <summary>The classified failure.</summary>
    public RemoteError Error { get; } = error;
}
