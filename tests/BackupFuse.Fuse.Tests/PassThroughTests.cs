using BackupFuse.Testing;
using Xunit.Abstractions;

namespace BackupFuse.Fuse.Tests;

/// <summary>Plain files through a mount made over the served directory itself.</summary>
public sealed class PassThroughTests(ITestOutputHelper output)
{
    [SkippableFact]
    public void MountOverSelf_ShowsExistingContentAtTheSamePath()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, dir =>
        {
            File.WriteAllText(Path.Combine(dir, "before.txt"), "written before mounting");
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            File.WriteAllText(Path.Combine(dir, "sub", "nested.txt"), "nested");
        });

        Assert.True(TestMount.IsMounted(m.Directory), "the directory itself should be a fuse.backupfuse mount point");
        Assert.Equal("written before mounting", File.ReadAllText(m["before.txt"]));
        Assert.Equal("nested", File.ReadAllText(Path.Combine(m.MountPoint, "sub", "nested.txt")));
        Assert.Equal(["before.txt", "sub"], Directory.GetFileSystemEntries(m.MountPoint).Select(Path.GetFileName).Order());
    }

    [SkippableFact]
    public void CreateWriteReadRenameUnlinkMkdirTruncateChmod_WorkAndLandInTheDirectory()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        var random = new Random(42);
        var big = new byte[9 * 1024 * 1024 + 123];
        random.NextBytes(big);
        string dir;
        using (var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "old.txt"), "old content")))
        {
            dir = m.Directory;
            File.WriteAllText(m["new.txt"], "hello through fuse");
            Assert.Equal("hello through fuse", File.ReadAllText(m["new.txt"]));

            File.Move(m["new.txt"], m["renamed.txt"]);
            Assert.False(File.Exists(m["new.txt"]));
            Assert.Equal("hello through fuse", File.ReadAllText(m["renamed.txt"]));

            File.Delete(m["old.txt"]);
            Assert.False(File.Exists(m["old.txt"]));

            Directory.CreateDirectory(m["made"]);
            File.WriteAllText(Path.Combine(m["made"], "inner.txt"), "inner");
            Directory.CreateDirectory(m["gone"]);
            Directory.Delete(m["gone"]);
            Assert.False(Directory.Exists(m["gone"]));

            using (var fs = new FileStream(m["trunc.bin"], FileMode.Create))
            {
                fs.Write(new byte[10000]);
                fs.SetLength(1234);
            }

            Assert.Equal(1234, new FileInfo(m["trunc.bin"]).Length);
            Assert.Equal(0, Posix.Truncate(m["trunc.bin"], 77));
            Assert.Equal(77, new FileInfo(m["trunc.bin"]).Length);

            File.SetUnixFileMode(m["renamed.txt"], UnixFileMode.UserRead | UnixFileMode.GroupRead);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead, File.GetUnixFileMode(m["renamed.txt"]));

            File.WriteAllBytes(m["big.bin"], big);
            File.WriteAllBytes(Path.Combine(Path.GetDirectoryName(m.Directory)!, "big.ref"), big);
            var cmp = ExternalTool.Run("cmp", [m["big.bin"], Path.Combine(Path.GetDirectoryName(m.Directory)!, "big.ref")]);
            Assert.True(cmp.ExitCode == 0, cmp.Output);

            File.CreateSymbolicLink(m["link"], "renamed.txt");
            Assert.Equal("renamed.txt", new FileInfo(m["link"]).LinkTarget);
            Assert.Equal("hello through fuse", File.ReadAllText(m["link"]));

            var ls = ExternalTool.Run("ls", ["-l", m.MountPoint]);
            output.WriteLine(ls.StdOut);
            Assert.Equal(0, ls.ExitCode);
            Assert.Contains("-r--r-----", ls.StdOut);
            Assert.Contains("renamed.txt", ls.StdOut);
            Assert.Contains("link -> renamed.txt", ls.StdOut);

            m.Unmount();
            Assert.False(TestMount.IsMounted(dir));

            // After unmounting, everything written through the mount is in the directory itself.
            Assert.Equal("hello through fuse", File.ReadAllText(Path.Combine(dir, "renamed.txt")));
            Assert.False(File.Exists(Path.Combine(dir, "old.txt")));
            Assert.Equal("inner", File.ReadAllText(Path.Combine(dir, "made", "inner.txt")));
            Assert.Equal(77, new FileInfo(Path.Combine(dir, "trunc.bin")).Length);
            Assert.Equal(big, File.ReadAllBytes(Path.Combine(dir, "big.bin")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(dir, "renamed.txt")));
        }
    }

    [SkippableFact]
    public void SeparateMountPoint_ShowsTheDirectoryAndWritesLandThere()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "a.txt"), "A"), separateMountPoint: true);
        Assert.NotEqual(m.Directory, m.MountPoint);
        Assert.True(TestMount.IsMounted(m.MountPoint));
        Assert.False(TestMount.IsMounted(m.Directory));
        Assert.Equal("A", File.ReadAllText(m["a.txt"]));

        File.WriteAllText(m["b.txt"], "B");
        Assert.Equal("B", File.ReadAllText(Path.Combine(m.Directory, "b.txt"))); // visible in the directory at once

        File.WriteAllText(Path.Combine(m.Directory, "c.txt"), "C"); // and the other way round
        Assert.Equal("C", File.ReadAllText(m["c.txt"]));
    }

    [SkippableFact]
    public void ReadOnlyMount_RefusesWritesWithErofs()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output))
        {
            return;
        }

        using var m = new TestMount(output, d => File.WriteAllText(Path.Combine(d, "a.txt"), "A"), readOnly: true);
        Assert.Equal("A", File.ReadAllText(m["a.txt"]));
        Assert.Equal(-Errno.EROFS, Posix.Open(m["a.txt"], Posix.O_WRONLY));
        Assert.Equal(-Errno.EROFS, Posix.Open(m["new.txt"], Posix.O_WRONLY | Posix.O_CREAT));
        Assert.Throws<IOException>(() => Directory.CreateDirectory(m["d"]));
        Assert.Equal(-Errno.EROFS, Posix.Truncate(m["a.txt"], 0));
        Assert.Equal("A", File.ReadAllText(m["a.txt"]));
    }

    [SkippableFact]
    public void FilesCreatedByAnotherUser_BelongToThatUser_WithTheRequestedMode()
    {
        if (FuseTestEnvironment.SkipUnlessMountable(output) || FuseTestEnvironment.Skip(output, Environment.UserName != "root" || !ExternalTool.Exists("setpriv") ? "needs root and setpriv to act as another user" : null))
        {
            return;
        }

        using var m = new TestMount(
            output,
            d =>
            {
                File.SetUnixFileMode(Path.GetDirectoryName(d)!, (UnixFileMode)0x1ED); // 0755: the temp parent is 0700
                File.SetUnixFileMode(d, (UnixFileMode)0x1FF);                         // 0777
            },
            allowOther: true);
        var r = ExternalTool.Run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
            $"umask 027 && echo hi > {m["by-nobody.txt"]} && mkdir {m["dir-by-nobody"]} && ln -s target {m["link-by-nobody"]}"]);
        Assert.True(r.ExitCode == 0, r.Output);
        m.Unmount();

        var stat = ExternalTool.Check("stat", "-c", "%n %u %g %a", Path.Combine(m.Directory, "by-nobody.txt"), Path.Combine(m.Directory, "dir-by-nobody"), Path.Combine(m.Directory, "link-by-nobody")).StdOut;
        output.WriteLine(stat);
        Assert.Contains("by-nobody.txt 65534 65534 640", stat);   // 0666 & ~027, owned by the caller
        Assert.Contains("dir-by-nobody 65534 65534 750", stat);   // 0777 & ~027
        Assert.Contains("link-by-nobody 65534 65534 777", stat);
    }
}
