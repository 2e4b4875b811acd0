using Amazon.Runtime;
using Amazon.S3;

namespace BackupFuse.Remote;

/// <summary>
/// Classifies S3 failures for <see cref="RetryPolicy"/>. Reasons use the status and the S3 error code only, never the
/// SDK's message (it may quote the request: the access key id, the canonical request).
/// </summary>
internal static class S3Errors
{
    public static RemoteError? Classify(Exception e)
    {
        switch (e)
        {
            case AmazonS3Exception s3:
                int status = (int)s3.StatusCode;
                string code = string.IsNullOrEmpty(s3.ErrorCode) ? $"HTTP {status}" : $"{s3.ErrorCode}, HTTP {status}";
                if (s3.ErrorCode is "SlowDown" or "RequestTimeout" or "InternalError" or "ServiceUnavailable" or "RequestTimeTooSkewed" && status != 403)
                {
                    return new RemoteError(RemoteErrorKind.Transient, $"S3 answered {code}");
                }

                return status switch
                {
                    404 => new RemoteError(RemoteErrorKind.NotFound, s3.ErrorCode == "NoSuchBucket" ? $"no such bucket ({code})" : $"no such object ({code})"),
                    401 or 403 => new RemoteError(RemoteErrorKind.Denied, $"access denied ({code}): check the credentials (environment, profile or role) and the bucket policy"),
                    0 => RemoteError.FromTransport(e) ?? new RemoteError(RemoteErrorKind.Transient, "no answer from the S3 endpoint"),
                    _ => RemoteError.FromStatus(status) with { Reason = $"S3 answered {code}" },
                };
            case AmazonServiceException service when (int)service.StatusCode != 0:
                return RemoteError.FromStatus((int)service.StatusCode);
            case AmazonClientException client when RemoteError.FromTransport(client) is { } transport:
                return transport;
            case AmazonClientException when e.Message.StartsWith("Failed to resolve AWS credentials", StringComparison.Ordinal):
                return new RemoteError(RemoteErrorKind.Final,
                    "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or use an instance role; see docs/remote.md)");
            case AmazonClientException:
                // No region, a bad configuration...: the SDK's own first sentence is about configuration, not a secret.
                return new RemoteError(RemoteErrorKind.Final, $"S3 client error: {FirstLine(e.Message)}");
            default:
                return null;
        }
    }

    /// <summary>Classifies an error answer to a presigned request, by status and the &lt;Code&gt; of its XML body.</summary>
    public static RemoteError FromResponse(HttpResponseMessage response)
    {
        int status = (int)response.StatusCode;
        string? code = null;
        try
        {
            using var body = response.Content.ReadAsStream();
            byte[] head = new byte[8192];
            int n = body.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            var match = System.Text.RegularExpressions.Regex.Match(System.Text.Encoding.UTF8.GetString(head, 0, n), "<Code>([A-Za-z0-9.]{1,64})</Code>");
            code = match.Success ? match.Groups[1].Value : null;
        }
        catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException)
        {
            // No body: the status alone decides.
        }

        var error = Classify(new AmazonS3Exception("error answer") { StatusCode = response.StatusCode, ErrorCode = code });
        return error ?? RemoteError.FromStatus(status);
    }

    private static string FirstLine(string text)
    {
        int nl = text.IndexOfAny(['\r', '\n']);
        return (nl < 0 ? text : text[..nl]).TrimEnd(':', ' ');
    }
}
