using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using BackupFuse.Remote;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>Helpers the remote-repository fixtures share: a free loopback port, a server process, waiting for it.</summary>
internal static class RemoteTestServers
{
    /// <summary>A TCP port on 127.0.0.1 that is free right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts <paramref name="program"/>; its output goes to <paramref name="log"/>.</summary>
    public static Process Start(string program, string log, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var writer = TextWriter.Synchronized(new StreamWriter(log) { AutoFlush = true });
        p.OutputDataReceived += (_, e) => { if (e.Data != null) { writer.WriteLine(e.Data); } };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) { writer.WriteLine(e.Data); } };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Waits until something listens on <paramref name="port"/>, or throws with the server's log.</summary>
    public static void WaitListening(Process p, int port, string log)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (p.HasExited)
            {
                throw new InvalidOperationException($"server exited {p.ExitCode}: {File.ReadAllText(log)}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }

        throw new TimeoutException($"nothing listens on port {port} after 30 s: {File.ReadAllText(log)}");
    }

    /// <summary>Stops a server process started here (by its own id).</summary>
    public static void Stop(Process? p)
    {
        if (p == null)
        {
            return;
        }

        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        p.Dispose();
    }
}

/// <summary>
/// s3rver (npm, installed by scripts/install-deps.sh --test into /opt/backupfuse-test) on a free loopback port, with
/// bucket "bkt", for one test class. s3rver checks the access key id (S3RVER) but not the signature, so the secret
/// key is a marker that the tests look for in every output, log and plugin file.
/// </summary>
public sealed class S3rverFixture : IDisposable
{
    /// <summary>The bucket s3rver creates at start.</summary>
    public const string Bucket = "bkt";

    /// <summary>The secret access key every backupfuse run gets: it must never show anywhere.</summary>
    public const string SecretMarker = "bfSECRETmarker0f3e9a71c2";

    /// <summary>Where install-deps.sh --test installs s3rver.</summary>
    public const string Executable = "/opt/backupfuse-test/node_modules/.bin/s3rver";

    private readonly Process? _process;

    /// <summary>Starts s3rver, or records why it cannot (tests skip with that reason).</summary>
    public S3rverFixture()
    {
        if (!File.Exists(Executable) || !ExternalTool.Exists("node"))
        {
            Missing = $"s3rver is missing ({Executable}; scripts/install-deps.sh --test installs it with npm)";
            return;
        }

        Directory.CreateDirectory(Dir["data"]);
        Port = RemoteTestServers.FreePort();
        _process = RemoteTestServers.Start(Executable, Dir["s3rver.log"], "-d", Dir["data"], "-a", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", Bucket);
        RemoteTestServers.WaitListening(_process, Port, Dir["s3rver.log"]);
    }

    /// <summary>Why the server is not there, or null.</summary>
    public string? Missing { get; }

    /// <summary>Scratch space of the class (disks, plugins, mounts).</summary>
    public TempDirectory Dir { get; } = new("bfs3");

    /// <summary>s3rver's port.</summary>
    public int Port { get; }

    /// <summary>The endpoint URL.</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>The environment every backupfuse run gets: s3rver's key id and the secret marker.</summary>
    public Dictionary<string, string> Env => new()
    {
        ["AWS_ACCESS_KEY_ID"] = "S3RVER",
        ["AWS_SECRET_ACCESS_KEY"] = SecretMarker,
        ["AWS_REGION"] = "us-east-1",
        ["AWS_EC2_METADATA_DISABLED"] = "true",
    };

    /// <summary>Runs backupfuse with the S3 environment and <c>--s3-endpoint</c>.</summary>
    public ToolResult Run(params string[] args) => Cli.RunWithEnv(Env, [.. args, "--s3-endpoint", Endpoint]);

    /// <summary>Runs and asserts exit code 0.</summary>
    public ToolResult Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, $"backupfuse {string.Join(' ', args)} exited {r.ExitCode}: {r.Output}");
        AssertNoSecret(r.Output);
        return r;
    }

    /// <summary>The image names directly under <paramref name="prefix"/> in the bucket (through the product's own listing).</summary>
    public IReadOnlyList<string> List(string prefix)
    {
        foreach (var (k, v) in Env)
        {
            Environment.SetEnvironmentVariable(k, v);
        }

        using var stores = new RemoteStores(new RemoteRepositoryOptions { S3Endpoint = Endpoint });
        return stores.Repository($"s3://{Bucket}/{prefix}").List();
    }

    /// <summary>Asserts that <paramref name="text"/> does not hold the secret key.</summary>
    public static void AssertNoSecret(string text) =>
        Assert.False(text.Contains(SecretMarker, StringComparison.Ordinal), $"the secret key leaked: {text}");

    /// <inheritdoc/>
    public void Dispose()
    {
        RemoteTestServers.Stop(_process);
        Dir.Dispose();
    }
}

/// <summary>
/// nginx (Debian nginx-light) on two free loopback ports, HTTP and HTTPS, serving <see cref="Root"/> with a JSON
/// autoindex, for one test class. The HTTPS certificate is self-signed, made here with openssl; clients trust it
/// through SSL_CERT_FILE.
/// </summary>
public sealed class NginxFixture : IDisposable
{
    private readonly Process? _process;

    /// <summary>Starts nginx, or records why it cannot.</summary>
    public NginxFixture()
    {
        string? nginx = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);
        if (nginx == null || !ExternalTool.Exists("openssl"))
        {
            Missing = "nginx or openssl is missing (packages nginx-light, openssl; scripts/install-deps.sh --test installs them)";
            return;
        }

        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Dir["tmp"]);
        ExternalTool.Check("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", Dir["key.pem"], "-out", CertificateFile,
            "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1");
        HttpPort = RemoteTestServers.FreePort();
        HttpsPort = RemoteTestServers.FreePort();
        string t = Dir["tmp"];
        File.WriteAllText(Dir["nginx.conf"], $$"""
            user root root;
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{Dir["nginx.pid"]}};
            error_log {{Dir["error.log"]}};
            events { worker_connections 256; }
            http {
              access_log off;
              client_body_temp_path {{t}}/body;
              proxy_temp_path {{t}}/proxy;
              fastcgi_temp_path {{t}}/fastcgi;
              uwsgi_temp_path {{t}}/uwsgi;
              scgi_temp_path {{t}}/scgi;
              server {
                listen 127.0.0.1:{{HttpPort}};
                listen 127.0.0.1:{{HttpsPort}} ssl;
                ssl_certificate {{CertificateFile}};
                ssl_certificate_key {{Dir["key.pem"]}};
                root {{Root}};
                autoindex on;
                autoindex_format json;
              }
            }
            """);
        _process = RemoteTestServers.Start(nginx, Dir["nginx.log"], "-c", Dir["nginx.conf"], "-p", Dir.Path, "-e", Dir["error.log"]);
        RemoteTestServers.WaitListening(_process, HttpPort, Dir["nginx.log"]);
        RemoteTestServers.WaitListening(_process, HttpsPort, Dir["nginx.log"]);
    }

    /// <summary>Why the server is not there, or null.</summary>
    public string? Missing { get; }

    /// <summary>Scratch space of the class.</summary>
    public TempDirectory Dir { get; } = new("bfhttp");

    /// <summary>The directory nginx serves.</summary>
    public string Root => Dir["www"];

    /// <summary>The self-signed certificate (trusted through SSL_CERT_FILE).</summary>
    public string CertificateFile => Dir["cert.pem"];

    /// <summary>The HTTP port.</summary>
    public int HttpPort { get; }

    /// <summary>The HTTPS port.</summary>
    public int HttpsPort { get; }

    /// <summary>The URL of <paramref name="path"/> under the served root, over HTTP or HTTPS.</summary>
    public string Url(bool https, string path) => https ? $"https://127.0.0.1:{HttpsPort}/{path}" : $"http://127.0.0.1:{HttpPort}/{path}";

    /// <summary>The environment of backupfuse runs: the test's certificate is the trusted CA.</summary>
    public Dictionary<string, string> Env => new() { ["SSL_CERT_FILE"] = CertificateFile };

    /// <inheritdoc/>
    public void Dispose()
    {
        RemoteTestServers.Stop(_process);
        Dir.Dispose();
    }
}
