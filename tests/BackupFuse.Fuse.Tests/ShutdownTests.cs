using System.Diagnostics;
using BackupFuse.Fuse.Overlay;
using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>In-process shutdown paths: cancellation, SIGTERM, external fusermount3 -u, a reader holding a file.</summary>
public sealed class ShutdownTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public void Cancellation_UnmountsCleanly()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var temp = new TempDirectory("bf-fuse");
        File.WriteAllText(temp["a.txt"], "A");
        using var fs = DirectoryOverlayFileSystem.Open(temp.Path);
        using var cts = new CancellationTokenSource();
        using var mount = new FuseMount(new FuseMountOptions { MountPoint = temp.Path }, fs, new RecordingLog(output));
        mount.Start(cts.Token);
        Assert.True(Waits.Within(mount.Mounted, Timeout));
        Assert.True(TestMount.IsMounted(temp.Path));
        Assert.Equal("A", File.ReadAllText(temp["a.txt"]));

        cts.Cancel();
        Assert.True(Waits.Within(mount.Completion, Timeout), "the loop did not end after cancellation");
        Assert.Equal(0, Waits.ResultOf(mount.Completion));
        Assert.False(TestMount.IsMounted(temp.Path));
        Assert.Equal("A", File.ReadAllText(temp["a.txt"]));
    }

    [SkippableFact]
    public void FuseHostRun_ReturnsWhenCancelled_AndReportsMounted()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var temp = new TempDirectory("bf-fuse");
        using var fs = DirectoryOverlayFileSystem.Open(temp.Path);
        using var cts = new CancellationTokenSource();
        var mounted = new ManualResetEventSlim();
        var run = Task.Run(() => FuseHost.Run(new FuseMountOptions { MountPoint = temp.Path }, fs, new RecordingLog(output), cts.Token, mounted.Set));
        Assert.True(mounted.Wait(Timeout));
        Assert.True(TestMount.IsMounted(temp.Path));
        cts.Cancel();
        Assert.True(Waits.Within(run, Timeout));
        Assert.Equal(0, Waits.ResultOf(run));
        Assert.False(TestMount.IsMounted(temp.Path));
    }

    [SkippableFact]
    public void ExternalFusermountUnmount_EndsTheLoop()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "a.txt"), "A"));
        Assert.Equal("A", File.ReadAllText(m["a.txt"]));
        var r = ExternalTool.Run("fusermount3", ["-u", m.MountPoint], Timeout);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.True(Waits.Within(m.Mount.Completion, Timeout), "the loop did not end after fusermount3 -u");
        Assert.False(TestMount.IsMounted(m.MountPoint));
    }

    [SkippableFact]
    public void Sigterm_WithHandleSignals_UnmountsAndKeepsTheProcessAlive()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var temp = new TempDirectory("bf-fuse");
        using var fs = DirectoryOverlayFileSystem.Open(temp.Path);
        using var mount = new FuseMount(new FuseMountOptions { MountPoint = temp.Path, HandleSignals = true }, fs, new RecordingLog(output));
        mount.Start();
        Assert.True(Waits.Within(mount.Mounted, Timeout)); // the signal handlers are registered before the loop starts
        ExternalTool.Check("kill", "-TERM", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(Waits.Within(mount.Completion, Timeout), "the loop did not end after SIGTERM");
        Assert.False(TestMount.IsMounted(temp.Path));
    }

    [SkippableFact]
    public void Unmount_WhileAFileIsOpen_DetachesAtOnce_AndEndsWhenTheFileCloses()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "a.txt"), "AAAA"), separateMountPoint: true);
        var reader = File.OpenHandle(m["a.txt"]);
        try
        {
            m.Mount.Unmount();
            Assert.False(TestMount.IsMounted(m.MountPoint), "lazy unmount removes the mount from the namespace at once");
            Assert.False(Waits.Within(m.Mount.Completion, TimeSpan.FromMilliseconds(300)), "the open file is still served");
            var buffer = new byte[4];
            Assert.Equal(4, RandomAccess.Read(reader, buffer, 0));
            Assert.Equal("AAAA"u8.ToArray(), buffer);
        }
        finally
        {
            reader.Dispose();
        }

        var sw = Stopwatch.StartNew();
        Assert.True(Waits.Within(m.Mount.Completion, Timeout), "the loop did not end after the last file closed");
        output.WriteLine($"loop ended {sw.ElapsedMilliseconds} ms after the file was closed");
    }

    [SkippableFact]
    public void MountFailure_FaultsMountedAndCompletion()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var temp = new TempDirectory("bf-fuse");
        using var fs = DirectoryOverlayFileSystem.Open(temp.Path);
        using var mount = new FuseMount(new FuseMountOptions { MountPoint = temp["does-not-exist"] }, fs, new RecordingLog(output));
        mount.Start();
        Assert.True(Waits.Within(mount.Mounted, Timeout));
        Assert.True(mount.Mounted.IsFaulted);
        var e = mount.Mounted.Exception!.InnerException!;
        output.WriteLine(e.Message);
        Assert.IsType<IOException>(e);
        Assert.True(Waits.Within(mount.Completion, Timeout));
        Assert.True(mount.Completion.IsFaulted);
    }
}
