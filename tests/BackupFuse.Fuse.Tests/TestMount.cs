using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>
/// A real mount for one test: a temp directory (served) and a mount point (the directory itself by default),
/// mounted on a background thread; Dispose unmounts and waits, with `umount -l` as the last resort so a bug
/// never leaves a mount behind or hangs the run.
/// </summary>
internal sealed class TestMount : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly TempDirectory _temp;
    private readonly ITestOutputHelper _output;

    public TestMount(ITestOutputHelper output, Action<string>? populate = null, IVirtualFileProvider? provider = null, bool readOnly = false, bool separateMountPoint = false, bool allowOther = false)
    {
        _output = output;
        _temp = new TempDirectory("bf-fuse");
        Directory = Path.Combine(_temp.Path, "dir");
        System.IO.Directory.CreateDirectory(Directory);
        MountPoint = Directory;
        if (separateMountPoint)
        {
            MountPoint = Path.Combine(_temp.Path, "mnt");
            System.IO.Directory.CreateDirectory(MountPoint);
        }

        populate?.Invoke(Directory);
        Log = new RecordingLog(output);
        FileSystem = DirectoryOverlayFileSystem.Open(Directory, provider, readOnly); // before mounting over it
        Mount = new FuseMount(new FuseMountOptions { MountPoint = MountPoint, ReadOnly = readOnly, AllowOther = allowOther }, FileSystem, Log);
        Mount.Start();
        try
        {
            if (!Mount.Mounted.Wait(Timeout))
            {
                throw new TimeoutException($"mount at {MountPoint} did not come up within {Timeout}");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Directory { get; }

    public string MountPoint { get; }

    public DirectoryOverlayFileSystem FileSystem { get; }

    public FuseMount Mount { get; }

    public RecordingLog Log { get; }

    public string this[string name] => Path.Combine(MountPoint, name);

    public static bool IsMounted(string path) =>
        File.ReadAllLines("/proc/self/mounts").Any(l => l.Split(' ') is [_, var mp, var type, ..] && mp == path && type == "fuse.backupfuse");

    /// <summary>Unmounts and waits for the loop to end.</summary>
    public void Unmount()
    {
        Mount.Unmount();
        if (!Mount.Completion.Wait(Timeout))
        {
            throw new TimeoutException($"FUSE loop at {MountPoint} did not end within {Timeout}");
        }
    }

    public void Dispose()
    {
        try
        {
            Mount.Unmount();
            if (!Mount.Completion.Wait(Timeout))
            {
                _output.WriteLine($"loop did not end; forcing umount -l {MountPoint}");
                ExternalTool.Run("umount", ["-l", MountPoint], TimeSpan.FromSeconds(10));
            }
        }
        catch (AggregateException)
        {
            // mount failure already reported by the test
        }
        finally
        {
            if (IsMounted(MountPoint))
            {
                ExternalTool.Run("umount", ["-l", MountPoint], TimeSpan.FromSeconds(10));
            }

            FileSystem.Dispose();
            _temp.Dispose();
        }
    }
}

/// <summary>Keeps FUSE log lines for assertions and echoes them to the test output.</summary>
internal sealed class RecordingLog(ITestOutputHelper output) : IFuseLog
{
    private readonly List<(FuseLogLevel Level, string Message)> _lines = [];

    public IReadOnlyList<(FuseLogLevel Level, string Message)> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public bool IsEnabled(FuseLogLevel level) => level >= FuseLogLevel.Information;

    public void Log(FuseLogLevel level, string message, Exception? exception)
    {
        lock (_lines)
        {
            _lines.Add((level, message));
        }

        try
        {
            output.WriteLine($"[{level}] {message}");
        }
        catch (InvalidOperationException)
        {
            // the test has finished; the line is still recorded
        }
    }
}
